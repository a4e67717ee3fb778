"""The exercise notebook, executed for real with nbclient in temporary copies of exercise_08."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from test_exercise08_modules import BEGIN, strip_solutions  # noqa: E402

from exercise_08.exercise_code.model_rules import check_model_file  # noqa: E402

NOTEBOOK = "autoencoder.ipynb"
HIDDEN = ("### BEGIN " + "HIDDEN TESTS", "### END " + "HIDDEN TESTS")


def copy_exercise(destination: Path) -> Path:
    folder = destination / "exercise_08"
    shutil.copytree(
        ROOT / "exercise_08",
        folder,
        ignore=shutil.ignore_patterns("models", "*.zip", "__pycache__", ".ipynb_checkpoints"),
    )
    return folder


def execute(folder: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run the notebook top to bottom in ``folder`` with extra environment variables."""
    notebook = nbformat.read(folder / NOTEBOOK, as_version=4)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        NotebookClient(
            notebook,
            timeout=1200,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        ).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def stdout_of(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("name") == "stdout"
    )


def graded_cells_writing_to_stderr(notebook: nbformat.NotebookNode) -> list[str]:
    """nbgrader counts a graded cell that writes to stderr (e.g. a warning) as failed."""
    return [
        cell.metadata["nbgrader"]["grade_id"]
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr" or output.get("output_type") == "error"
    ]


def test_grading_metadata_adds_up_to_fifty_points() -> None:
    notebook = nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4)
    graded = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]

    assert sum(c.metadata["nbgrader"]["points"] for c in graded) == 50
    assert len(ids) == len(set(ids))
    for cell in graded:
        assert cell.metadata["nbgrader"]["locked"]
        assert cell.source.startswith("# Test (")
        points = cell.metadata["nbgrader"]["points"]
        assert f"({points} points)" in cell.source.splitlines()[0]
        assert HIDDEN[0] in cell.source and HIDDEN[1] in cell.source
    for cell in notebook.cells:
        assert not cell.get("outputs"), "the source notebook is committed without outputs"


@pytest.mark.slow
def test_source_notebook_trains_saves_and_then_grades_from_the_saved_models(
    tmp_path: Path, student_data_dir: Path
) -> None:
    folder = copy_exercise(tmp_path)
    env = {"COURSE_DATA_DIR": str(student_data_dir)}
    repository_outputs = [ROOT / "exercise_08" / "models", ROOT / "exercise_08" / "exercise_08.zip"]
    existed = [path.exists() for path in repository_outputs]

    trained = execute(folder, env)

    check_model_file(folder / "models" / "classifier.pt2")
    assert (folder / "models" / "autoencoder.pt").is_file()
    names = set(zipfile.ZipFile(folder / "exercise_08.zip").namelist())
    assert {NOTEBOOK, "models/classifier.pt2", "models/autoencoder.pt"} <= names
    assert "exercise_code/networks.py" in names
    assert "Final model: public test accuracy" in stdout_of(trained)
    assert graded_cells_writing_to_stderr(trained) == []
    assert [path.exists() for path in repository_outputs] == existed

    # Under nbgrader's autograding the same notebook loads the saved models instead of training.
    (folder / "exercise_08.zip").unlink()
    graded = execute(folder, {**env, "NBGRADER_EXECUTION": "autograde"})
    text = stdout_of(graded)
    assert graded_cells_writing_to_stderr(graded) == []
    assert "autograding: True" in text
    assert "Autoencoder after" not in text, "the autoencoder must not train under autograding"
    assert "Saved the classifier" not in text
    assert not (folder / "exercise_08.zip").exists()
    assert json.loads((folder / "models" / "final_history.json").read_text())["train_loss"]


@pytest.mark.slow
def test_student_version_stops_at_the_first_stub_with_what_to_implement(
    tmp_path: Path, student_data_dir: Path
) -> None:
    folder = copy_exercise(tmp_path)
    for module in (folder / "exercise_code").glob("*.py"):
        text = module.read_text()
        if BEGIN in text:
            module.write_text(strip_solutions(text, f"exercise_code/{module.name}"))

    with pytest.raises(CellExecutionError) as failure:
        execute(folder, {"COURSE_DATA_DIR": str(student_data_dir)})

    message = re.sub(r"\x1b\[[0-9;]*m", "", str(failure.value))  # drop terminal colours
    assert "NotImplementedError: Implement Encoder.__init__ in exercise_code/networks.py" in message
    assert "checks.check_encoder()" in message
