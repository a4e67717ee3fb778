"""The feedback page is bounded, names every graded part, shows the hidden accuracy, and loads
nothing from a CDN: the real exercise_08 notebook, cleaned by :mod:`autograder.grading.feedback` and
rendered by nbconvert's HTMLExporter with nbgrader's feedback template (as ``report`` does) and
with the project's own ``feedback`` template
(:func:`autograder.grading.feedback.exporter_config`).
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
from pathlib import Path

import nbformat
import nbgrader
import pytest
from nbconvert.exporters import HTMLExporter
from traitlets.config import Config

from autograder.grading import feedback

ROOT = Path(__file__).resolve().parents[1]
NBGRADER = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
FLOOD = ("&" * 99 + "\n") * 400_000
"""40 MB of '&': 200 MB once escaped, as a cell that prints it would put into the page."""
HIDDEN_MESSAGE = (
    "Your model's accuracy on the hidden test set is 0.91, at least the 0.55 needed: all 50 points."
)


@pytest.fixture(scope="module")
def notebook() -> dict:
    """exercise_08's notebook with every graded cell scored (as nbgrader's GetGrades does)."""
    data = json.loads((ROOT / "exercise_08" / "autoencoder.ipynb").read_text())
    for cell in data["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            meta["score"] = meta["points"]
    return data


def _verdicts(notebook: dict) -> dict:
    found = {}
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            found[meta["grade_id"]] = (meta["points"], meta["points"], "")
    found["hidden_accuracy"] = (50, 50, HIDDEN_MESSAGE)
    return found


def _with_outputs(notebook: dict, grade_id: str, outputs: list[dict]) -> dict:
    changed = copy.deepcopy(notebook)
    for cell in changed["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell["outputs"] = outputs
    return changed


def render(cleaned: dict, named: bool = True) -> str:
    """The HTML page of a cleaned notebook, as nbgrader's generate_feedback renders it."""
    config = Config()
    if named:
        for key, value in feedback.exporter_config().items():
            setattr(config.HTMLExporter, key.split(".", 1)[1], value)
    else:
        config.HTMLExporter.template_name = "feedback"
        config.HTMLExporter.extra_template_basedirs = [str(NBGRADER / "templates")]
    config.HTMLExporter.extra_template_paths = [
        str(NBGRADER / "static" / "node_modules" / "bootstrap" / "dist" / "css")
    ]
    config.HTMLExporter.sanitize_html = True
    for cell in cleaned["cells"]:  # what GetGrades does with the gradebook's scores
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            meta["score"] = meta["points"]
    resources = {"nbgrader": {"notebook": "autoencoder", "score": 1, "max_score": 1}}
    resources["nbgrader"]["late_penalty"] = 0
    page, _ = HTMLExporter(config=config).from_notebook_node(
        nbformat.from_dict(cleaned), resources=resources
    )
    return page


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.mark.parametrize("named", [True, False], ids=["our_feedback_template", "nbgrader_template"])
def test_a_cell_printing_40_mb_of_ampersands_gives_a_page_under_one_megabyte(notebook, named):
    flooded = _with_outputs(
        notebook, "test_encoder", [{"output_type": "stream", "name": "stdout", "text": FLOOD}]
    )
    page = render(feedback.feedback_notebook(flooded, _verdicts(notebook)), named)
    assert len(page.encode()) < 2**20, f"{len(page.encode()):,} bytes"
    assert "cut for the feedback page: 39,959,719 more characters" in _text(page)
    assert "leaves out 189.0 MB" in _text(page), "the note at the top says how much was cut"


def test_many_long_outputs_and_a_huge_source_keep_the_whole_page_bounded(notebook):
    outputs = [{"output_type": "stream", "name": "stdout", "text": "<" * 150_000}] * 200
    outputs += [
        {
            "output_type": "display_data",
            "data": {"text/plain": "&" * 3_000_000, "image/png": "A" * 30_000_000},
        }
    ]
    flooded = _with_outputs(notebook, "test_decoder", outputs)
    flooded["cells"][3]["source"] = "& " * 20_000_000
    cleaned = feedback.feedback_notebook(flooded, _verdicts(notebook))
    page = render(cleaned)
    bound = feedback.MAX_PAGE_BYTES + 2**20  # the template's own CSS and markup
    assert len(page.encode()) < bound, f"{len(page.encode()):,} bytes"
    assert "an image of 28.6 MB, cut for the page" in _text(page)


def test_every_graded_part_is_named_and_the_hidden_cell_shows_the_accuracy(notebook):
    page = render(feedback.feedback_notebook(notebook, _verdicts(notebook)))
    listed = re.findall(r'<li><a href="#([^"]+)">([^<]+)</a>', page)
    assert listed[:3] == [
        ("test_encoder", "Encoder"),
        ("test_decoder", "Decoder"),
        ("test_autoencoder", "Autoencoder"),
    ]
    assert ("hidden_accuracy", "Hidden test") in listed and "Test cell" not in page
    text = _text(page)
    assert f"Grader's verdict: 50 of 50 points for Hidden test. {HIDDEN_MESSAGE}" in text
    assert "Your points, part by part" in text and "The saved classifier (test_saved_cl" in text


def test_formulas_are_unicode_text_and_nothing_comes_from_a_cdn(notebook):
    page = render(feedback.feedback_notebook(notebook, _verdicts(notebook)))
    assert "cdnjs" not in page and "MathJax" not in page and "<script src" not in page
    text = _text(page)
    assert "ln 10 ≈ 2.30" in text and "∑" in text and "\\frac" not in text
    assert not re.search(r"\$[^$\n]*\\[a-z]+[^$\n]*\$", text), "no raw LaTeX left"
    assert feedback.latex_as_text(r"\mu \leftarrow (1-\rho) \mu + \rho \mu_B") == (
        "μ ← (1-ρ) μ + ρ μ_B"
    )


def _autograded(tmp_path: Path, notebook: dict, name: str = "autoencoder") -> Path:
    folder = tmp_path / "autograded"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.ipynb").write_text(json.dumps(notebook))
    return folder


def test_kept_feedback_cleans_the_notebooks_and_says_when_one_is_too_large(tmp_path, notebook):
    folder = _autograded(tmp_path, notebook)
    kept = feedback.kept_feedback(folder, ["autoencoder"], _verdicts(notebook))
    assert kept.note == "" and kept.notebooks["autoencoder"]["cells"][0]["source"].startswith(
        "## Your points, part by part"
    )
    large = _with_outputs(
        notebook,
        "test_encoder",
        [{"output_type": "stream", "name": "stdout", "text": "x" * 3_000_000}],
    )
    folder = _autograded(tmp_path, large)
    kept = feedback.kept_feedback(folder, ["autoencoder"], _verdicts(notebook), max_bytes=2**21)
    assert kept.notebooks == {}
    assert kept.note.startswith(
        "Your notebook autoencoder.ipynb was too large for feedback (2.9 MB, more than 2 MB)"
    )
    assert kept.note.endswith("the points stand, print less in your cells next time.")


def test_kept_feedback_never_raises_on_hostile_notebook_files(tmp_path, notebook):
    folder = tmp_path / "autograded"
    folder.mkdir()
    (folder / "deep.ipynb").write_bytes(b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    (folder / "list.ipynb").write_text("[]")
    (folder / "cells.ipynb").write_text(json.dumps({"cells": [1, "x", {"cell_type": None}]}))
    os.symlink("/etc/passwd", folder / "link.ipynb")
    names = ["deep", "list", "cells", "link", "missing"]
    kept = feedback.kept_feedback(folder, names, _verdicts(notebook))
    assert set(kept.notebooks) == {"cells"}
    assert "deep.ipynb could not be shown as feedback (its JSON is nested" in kept.note
    assert "list.ipynb could not be shown" in kept.note and "link" not in kept.note


def test_a_flood_is_cut_before_it_is_cleaned_so_cleaning_stays_small(notebook):
    """Cleaning copies a text several times (lines, control characters); the flood is cut to
    what a page item could show first, so 40 MB never gets copied."""
    import tracemalloc

    flooded = _with_outputs(
        notebook, "test_encoder", [{"output_type": "stream", "name": "stdout", "text": FLOOD}]
    )
    tracemalloc.start()
    try:
        feedback.feedback_notebook(flooded, _verdicts(notebook))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"cleaning took {peak / 2**20:.0f} MB for a 40 MB output"
