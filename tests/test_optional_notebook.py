"""The optional exercise's notebook: nbgrader metadata, a real top-to-bottom run with nbclient,
the student version (solutions stripped as the release does) failing with clear messages, and
the submission zip. Every run works on a temporary copy, so the repository stays clean."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from test_exercise08_notebook import save_and_hand_in  # noqa: E402

from autograder.release import strip_solutions  # noqa: E402

EXERCISE = ROOT / "exercise_08_optional"
NOTEBOOK = "regularization.ipynb"
TOTAL_POINTS = 20
HIDDEN_BEGIN = "### BEGIN " + "HIDDEN TESTS"
SOLUTION_BEGIN = "### BEGIN " + "SOLUTION"
LAYER_FUNCTIONS = (
    "dropout_forward",
    "dropout_backward",
    "batchnorm_forward",
    "batchnorm_backward",
    "layernorm_forward",
    "layernorm_backward",
)


def _nbgrader(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def _copy_exercise(tmp_path: Path) -> Path:
    target = tmp_path / "exercise_08_optional"
    shutil.copytree(
        EXERCISE, target, ignore=shutil.ignore_patterns("*.zip", "__pycache__", ".ipynb_*")
    )
    return target


def _execute(folder: Path, allow_errors: bool) -> nbformat.NotebookNode:
    notebook = nbformat.read(folder / NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    return notebook


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "".join(parts)


def _errors(notebook: nbformat.NotebookNode) -> dict[int, str]:
    return {
        index: f"{output.ename}: {output.evalue}"
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    }


def test_graded_cells_carry_points_hidden_tests_and_say_what_they_check() -> None:
    notebook = nbformat.read(EXERCISE / NOTEBOOK, as_version=4)
    graded = [cell for cell in notebook.cells if _nbgrader(cell).get("grade")]
    assert sum(_nbgrader(cell)["points"] for cell in graded) == TOTAL_POINTS
    for cell in graded:
        meta = _nbgrader(cell)
        assert meta["locked"] and not meta["solution"] and cell.cell_type == "code"
        first = cell.source.splitlines()[0]
        assert first.startswith(f"# {meta['points']} point"), first
        assert HIDDEN_BEGIN in cell.source, f"{meta['grade_id']} has no hidden tests"
    ids = [_nbgrader(cell)["grade_id"] for cell in notebook.cells]
    assert all(ids) and len(set(ids)) == len(ids)
    for cell in notebook.cells:
        meta = _nbgrader(cell)
        assert meta["schema_version"] == 3
        assert meta["locked"] != meta["solution"], f"{meta['grade_id']}: given cells are locked"
        if cell.cell_type == "markdown":
            assert "BEGIN " not in cell.source and "END " not in cell.source


def test_layers_module_is_a_student_module_whose_stubs_name_the_function(tmp_path: Path) -> None:
    source = (EXERCISE / "exercise_code" / "layers.py").read_text(encoding="utf-8")
    assert source.count(SOLUTION_BEGIN) == len(LAYER_FUNCTIONS)
    stripped = strip_solutions(source, "exercise_code/layers.py")
    path = tmp_path / "layers_student.py"
    path.write_text(stripped, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("layers_student", path)
    student = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(student)
    from exercise_08_optional.exercise_code import checks

    with pytest.raises(NotImplementedError, match="Implement dropout_forward in exercise_code/"):
        checks.check_dropout_forward(student.dropout_forward)
    for name in LAYER_FUNCTIONS:
        assert f'raise NotImplementedError("Implement {name} in exercise_code/layers.py")' in (
            stripped
        )


def test_create_submission_zips_the_notebook_and_the_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from exercise_08_optional.exercise_code import submission

    folder = _copy_exercise(tmp_path)
    monkeypatch.setattr(submission, "EXERCISE_DIR", folder)
    assert submission.create_submission(tmp_path / "hand_in.zip") is None
    assert capsys.readouterr().out.strip() == (
        "hand_in.zip NOT written: regularization.ipynb on disk has graded cells that were never "
        "run; save the notebook with File > Save, then run this cell again."
    )
    notebook = nbformat.read(folder / NOTEBOOK, as_version=4)
    for number, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        cell.execution_count = number + 1
    nbformat.write(notebook, folder / NOTEBOOK)  # what File > Save after a run leaves

    path = submission.create_submission(tmp_path / "hand_in.zip")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    modules = {f"exercise_code/{p.name}" for p in (EXERCISE / "exercise_code").glob("*.py")}
    assert names == {NOTEBOOK} | modules
    assert "exercise_code/layers.py" in names


@pytest.mark.slow
def test_source_notebook_runs_top_to_bottom_and_passes_its_graded_cells(
    tmp_path: Path, student_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSE_DATA_DIR", str(student_data_dir))
    folder = _copy_exercise(tmp_path)
    notebook = _execute(folder, allow_errors=False)
    assert not _errors(notebook)
    for cell in notebook.cells:
        if _nbgrader(cell).get("grade"):
            text = _text(cell)
            assert "OK" in text or "label_breaking has" in text, text
    figures = sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
    assert figures >= 7
    everything = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    assert "ensemble accuracy" in everything and "stopped after epoch" in everything
    # nbclient does not save the notebook: the hand-in cell refuses the unexecuted file on disk.
    assert "exercise_08_optional.zip NOT written" in _text(notebook.cells[-1])
    assert not (folder / "exercise_08_optional.zip").exists()
    assert "hand in this file" in save_and_hand_in(notebook, folder / NOTEBOOK, {})
    with zipfile.ZipFile(folder / "exercise_08_optional.zip") as archive:
        assert NOTEBOOK in archive.namelist()


@pytest.mark.slow
def test_student_version_fails_graded_cells_with_clear_messages_and_still_runs(
    tmp_path: Path, student_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSE_DATA_DIR", str(student_data_dir))
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    folder = _copy_exercise(tmp_path)
    layers = folder / "exercise_code" / "layers.py"
    layers.write_text(
        strip_solutions(layers.read_text(encoding="utf-8"), "exercise_code/layers.py"),
        encoding="utf-8",
    )
    notebook = nbformat.read(folder / NOTEBOOK, as_version=4)
    resources: dict = {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests()):
        notebook, resources = preprocessor.preprocess(notebook, resources)
    nbformat.write(notebook, folder / NOTEBOOK)
    assert SOLUTION_BEGIN not in (folder / NOTEBOOK).read_text(encoding="utf-8")

    notebook = _execute(folder, allow_errors=True)
    errors = _errors(notebook)
    graded = {
        _nbgrader(cell)["grade_id"]: index
        for index, cell in enumerate(notebook.cells)
        if _nbgrader(cell).get("grade")
    }
    for grade_id, index in graded.items():
        assert index in errors, f"{grade_id} passed on the student version"
        if grade_id != "test_label_breaking":
            assert re.search(r"Implement \w+ in exercise_code/layers\.py", errors[index])
    assert "label_breaking is None" in errors[graded["test_label_breaking"]]
    # The lab's cells that do not use the student's layers run as usual.
    for marker in ("l2_vs_weight_decay", "regularization.bagging", "time_vs_space"):
        index = next(i for i, cell in enumerate(notebook.cells) if marker in cell.source)
        assert index not in errors, errors.get(index)
    assert not (folder / "exercise_08_optional.zip").exists()
