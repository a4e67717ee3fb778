"""Which cells the feedback run skips (autograder.grading.feedback_cells), on small notebooks."""

from __future__ import annotations

import json
from pathlib import Path

from autograder.grading.feedback_cells import SKIP_TAG, skippable_cells, tag_skipped

REPO = Path(__file__).resolve().parents[1]


def _cell(source: str, grade_id: str | None = None, **flags) -> dict:
    meta = {"nbgrader": {"grade_id": grade_id, **flags}} if grade_id else {}
    return {"cell_type": "code", "source": source, "metadata": meta, "outputs": []}


def _notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_a_cell_is_kept_when_a_graded_cell_needs_what_it_binds_even_through_others():
    notebook = _notebook(
        _cell("%matplotlib inline\nimport torch\nfrom lib import plots", "setup", locked=True),
        _cell("data = torch.zeros(3)", "load", locked=True),
        _cell("plots.show(data)", "plot", locked=True),
        _cell("model = make(data)\nhistory = []", "train", locked=True),
        _cell("results = {}\nresults['a'] = 1", "lesson", locked=True),
        _cell("plots.curve(history, results)", "plot_history", locked=True),
        _cell("assert model is not None", "test_model", grade=True, locked=True),
    )
    assert skippable_cells(notebook) == {"plot", "lesson", "plot_history"}


def test_graded_solution_unnamed_and_unparsable_cells_always_run():
    notebook = _notebook(
        _cell("x = 1", "given", locked=True),
        _cell("y = 2", "answer", solution=True),
        _cell("z = 3"),
        _cell("this is not python (", "broken", locked=True),
        _cell("w = 4", "test", grade=True),
    )
    assert skippable_cells(notebook) == {"given"}


def test_a_cell_that_changes_a_needed_object_by_item_or_attribute_is_kept():
    notebook = _notebook(
        _cell("config = Config()", "make", locked=True),
        _cell("config['lr'] = 0.1\nconfig.epochs = 3", "tune", locked=True),
        _cell("check(config)", "test", grade=True),
    )
    assert skippable_cells(notebook) == set()


def test_tags_go_on_exactly_the_named_cells_and_a_students_own_skip_tags_are_removed():
    notebook = _notebook(
        _cell("plot()", "plot"),
        _cell("check()", "test", grade=True),
        {"cell_type": "markdown", "source": "text", "metadata": {"nbgrader": {"grade_id": "plot"}}},
        "not a cell",
    )
    notebook["cells"][1]["metadata"]["tags"] = [SKIP_TAG, "keep-me"]
    tagged = tag_skipped(notebook, {"plot"})
    assert tagged["cells"][0]["metadata"]["tags"] == [SKIP_TAG]
    assert tagged["cells"][1]["metadata"]["tags"] == ["keep-me"]
    assert "tags" not in tagged["cells"][2]["metadata"]


def test_the_exercise_notebooks_skip_plots_but_never_a_graded_cell_or_the_data():
    for path in [
        REPO / "exercise_08" / "autoencoder.ipynb",
        *REPO.glob("exercise_08_optional/*.ipynb"),
    ]:
        notebook = json.loads(path.read_text())
        skipped = skippable_cells(notebook)
        assert skipped, path
        for cell in notebook["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") or meta.get("solution"):
                assert meta["grade_id"] not in skipped
    exercise = json.loads((REPO / "exercise_08" / "autoencoder.ipynb").read_text())
    assert {"setup", "load_data", "train_autoencoder"}.isdisjoint(skippable_cells(exercise))
