"""The hardening corpus: every bad or hostile submission ends in a clear row, in one batch.

All kinds of :mod:`corpus_behaviour` are collected and graded together with ``jobs=2`` and short
limits, next to the good submission. Each gets the expected status and a message naming the
problem; the good one keeps full marks; hostile code reached nothing; nothing outside
``course/`` changed; a re-run changes neither the records nor the CSV.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import corpus_behaviour as cb
import pytest

from autograder import collect, course, release
from autograder.grade import GradeSettings, grade
from autograder.report import report
from autograder.results import read_results

PWNED = Path("/tmp/autograder-corpus-pwned")
LITTER = (Path("/tmp/autograder-corpus-litter"), Path("/var/tmp/autograder-corpus-litter"))

EXPECTED = {
    # kind: (status, words in the message, total of 100)
    "good": ("graded", "", 100),
    "untouched": ("graded", "No models/classifier.pt2 in your submission", 0),
    "stderr_in_test": ("graded", "counts as a failed test (answer(): computing)", 75),
    "notebook_missing": ("error", "has no autoencoder.ipynb", 50),
    "notebook_renamed": ("error", "found autoencoder_final.ipynb", 50),
    "notebook_not_json": ("error", "not a valid notebook", 50),
    "graded_cells_deleted": ("graded", "lacks the graded cell(s) test_answer, test_value", 50),
    "graded_cells_edited": ("graded", "were undone before grading", 50),
    "exercise_code_missing": ("graded", "No module named 'exercise_code.answer'", 50),
    "exercise_code_raises": ("graded", "RuntimeError: half-written module", 50),
    "model_missing": ("graded", "No models/classifier.pt2 in your submission", 50),
    "model_untrained": ("graded", "below the 0.55 needed", 50),
    "model_not_pt2": ("graded", "not a model saved with torch.export", 50),
    "model_pickle_payload": ("graded", "not a model saved with torch.export", 50),
    "model_conv": ("graded", "only linear layers are allowed", 50),
    "model_too_many_parameters": ("graded", "more than the limit of 5,000,000", 50),
    "model_too_large_file": ("graded", "more than the limit of 20,000,000", 50),
    "model_wrong_shape": ("graded", "expected (1, 10)", 50),
    "model_nan_outputs": ("graded", "NaN or infinite logits", 50),
    "model_inf_outputs": ("graded", "NaN or infinite logits", 50),
    "model_flattened_input": ("graded", "(N, 1, 28, 28)", 50),
    "infinite_loop": ("timeout", "took longer than", 50),
    "kernel_kills_itself": ("error", "kernel died", 50),
    "memory_blowup": ("graded", "MemoryError", 75),
    "megabytes_of_printing": ("graded", "", 100),
    "fills_the_disk": ("error", "wrote more than 200 MB of files while it was graded", 50),
    "writes_gradebook_and_others": ("graded", "", 100),
    "searches_hidden_labels": ("graded", "", 100),
    "tries_network": ("graded", "", 100),
}

OUTPUT_CHECKS = {
    "writes_gradebook_and_others": "tampering refused",
    "searches_hidden_labels": "no hidden labels readable",
    "tries_network": "network unreachable",
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and os.access(p, os.R_OK)
    }


def _cell_text(notebook_path: Path) -> str:
    cells = json.loads(notebook_path.read_text())["cells"]
    return json.dumps([c.get("outputs", []) for c in cells])


@pytest.mark.slow
def test_every_corpus_kind_gets_a_clear_row_and_the_good_submission_keeps_full_marks(
    prepared_data_dir, tmp_path, monkeypatch, capsys
):
    assert set(EXPECTED) == set(cb.CHANGES)
    PWNED.unlink(missing_ok=True)
    repo = tmp_path / "repo"
    cb.make_exercise(repo)
    monkeypatch.setattr(course, "REPO_ROOT", repo)
    course_dir = tmp_path / "course"
    release.release(course_dir, ["exercise_08"], dist_dir=tmp_path / "dist")
    context = cb.corpus_context(tmp_path, course_dir, prepared_data_dir)
    zips = tmp_path / "zips"
    zips.mkdir()
    for kind, content in cb.corpus(course_dir / "release" / "exercise_08", context).items():
        cb.write_zip(content, zips / f"{kind}.zip")
    collect.collect(course_dir, "exercise_08", [zips], id_pattern=r"^(?P<id>[a-z0-9_]+)\.zip$")
    outside = {"repo": _snapshot(repo), "data": _snapshot(prepared_data_dir)}
    settings = GradeSettings(
        autograde_timeout_s=60,
        cell_timeout_s=15,
        autograde_memory_bytes=3 * 2**30,
        autograde_disk_bytes=200 * 2**20,
        hidden_timeout_s=60,
        data_dir=prepared_data_dir,
    )

    start = time.monotonic()
    grade(course_dir, "exercise_08", jobs=2, settings=settings)
    seconds = time.monotonic() - start

    records = {r["student_id"]: r for r in read_results(course_dir, "exercise_08")}
    table = []
    for kind, (status, words, total) in EXPECTED.items():
        record = records[kind]
        table.append(f"{kind} | {record['status']} | {record['total']:g} | {record['message']}")
        assert (record["status"], record["total"]) == (status, total), record
        assert words in record["message"], record["message"]
        if not words:
            assert record["message"] == ""
    # Without root there is no separate user id (and maybe no namespaces) to stop hostile code.
    for kind, text in OUTPUT_CHECKS.items() if os.geteuid() == 0 else ():
        notebook = course_dir / "autograded" / kind / "exercise_08" / "autoencoder.ipynb"
        assert text in _cell_text(notebook)
    assert not PWNED.exists()
    assert os.geteuid() != 0 or not any(path.exists() for path in LITTER)
    assert {"repo": _snapshot(repo), "data": _snapshot(prepared_data_dir)} == outside
    csv_path = report(course_dir, "exercise_08")
    csv_before = csv_path.read_bytes()
    print(f"\ncorpus of {len(EXPECTED)} graded in {seconds:.0f} s:\n" + "\n".join(table))

    grade(course_dir, "exercise_08", jobs=2, settings=settings)

    assert report(course_dir, "exercise_08").read_bytes() == csv_before
    assert f"skipped {len(EXPECTED)} already graded" in capsys.readouterr().out
