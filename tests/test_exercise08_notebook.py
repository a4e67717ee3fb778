"""The exercise notebook, executed for real with nbclient and nbgrader in temporary copies of
exercise_08: its metadata, a student's run, the hand-in, autograding and Validate."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
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
RUN_ALL_FIRST = "run the whole notebook first (Run > Run All Cells), then Validate"
BIN = Path(sys.executable).parent


def copy_exercise(destination: Path) -> Path:
    folder = destination / "exercise_08"
    shutil.copytree(
        ROOT / "exercise_08",
        folder,
        ignore=shutil.ignore_patterns(
            "models", "*.zip", "__pycache__", ".ipynb_checkpoints", "grading"
        ),
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


def values_left_by_graded_cells(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Graded cells that show an Out[] value (a check's return value nobody asked for)."""
    return {
        cell.metadata["nbgrader"]["grade_id"]: output["data"].get("text/plain", "")
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
        for output in cell.get("outputs", [])
        if output.get("output_type") == "execute_result"
    }


def save_and_hand_in(notebook: nbformat.NotebookNode, path: Path, env: dict[str, str]) -> str:
    """Write the executed notebook (File > Save), then run create_submission() in its folder as
    the hand-in cell would; returns what it printed."""
    nbformat.write(notebook, path)
    code = "from exercise_code.submission import create_submission\ncreate_submission()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return done.stdout


def hidden_part(source: str) -> str:
    return source.split(HIDDEN[0], 1)[1].split(HIDDEN[1], 1)[0]


def test_grading_metadata_fifty_test_points_and_fifty_hidden_points() -> None:
    notebook = nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4)
    graded = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in notebook.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]
    points = {grade_id: cell.metadata["nbgrader"]["points"] for grade_id, cell in graded.items()}

    assert points == {
        "test_encoder": 6,
        "test_decoder": 6,
        "test_autoencoder": 4,
        "test_classifier": 6,
        "test_autoencoder_steps": 7,
        "test_classifier_steps": 7,
        "test_trained_autoencoder": 6,
        "test_saved_classifier": 8,
        "hidden_accuracy": 50,
    }
    assert sum(points.values()) == 100
    assert len(ids) == len(set(ids))
    for grade_id, cell in graded.items():
        assert cell.metadata["nbgrader"]["locked"] and cell.cell_type == "code"
        if grade_id == "hidden_accuracy":
            assert cell.source.startswith("# Hidden test (50 points)")
            continue
        assert cell.source.startswith(f"# Test ({points[grade_id]} points)")
        assert HIDDEN[0] in cell.source and HIDDEN[1] in cell.source
    for cell in notebook.cells:
        assert not cell.get("outputs"), "the source notebook is committed without outputs"


def test_every_graded_cell_sits_under_its_own_heading() -> None:
    cells = nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.metadata.get("nbgrader", {}).get("grade"):
            heading = cells[index - 1]
            points = cell.metadata["nbgrader"]["points"]
            assert heading.cell_type == "markdown" and heading.source.startswith("### ")
            assert f"({points} points)" in heading.source.splitlines()[0], heading.source


def test_every_hidden_assert_says_what_failed() -> None:
    """Students see no hidden test source in their feedback, only the error message."""
    cells = nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4).cells
    hidden = [hidden_part(c.source) for c in cells if HIDDEN[0] in c.source]
    asserts = [n for part in hidden for n in ast.walk(ast.parse(part)) if isinstance(n, ast.Assert)]
    assert asserts, "the hidden tests hold asserts of their own"
    assert all(node.msg is not None for node in asserts)


def test_code_cells_are_short() -> None:
    cells = nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4).cells
    long = [
        c.metadata.get("nbgrader", {}).get("grade_id")
        for c in cells
        if c.cell_type == "code" and len(c.source.splitlines()) > 32
    ]
    assert long == []


def test_every_section_a_message_names_exists() -> None:
    """Messages point at "section 6", "section 8", "section 9": those headings exist."""
    headings = [
        c.source.splitlines()[0]
        for c in nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4).cells
        if c.cell_type == "markdown"
    ]
    code = ROOT / "exercise_08" / "exercise_code"
    named = set(re.findall(r"section (\d+)", "".join(p.read_text() for p in code.glob("*.py"))))
    assert named >= {"6", "8", "9"}
    for number in named:
        assert any(h.startswith(f"## {number}. ") for h in headings), number


def test_the_notebook_shows_the_learning_curve_the_bench_writes_with_its_command() -> None:
    cells = nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4).cells
    showing = [c.source for c in cells if "figures/learning_curve.png" in c.source]
    bench = (ROOT / "bench" / "bench_exercise08.py").read_text()

    assert len(showing) == 1 and showing[0].count("](figures/learning_curve.png)") == 1
    assert "python bench/bench_exercise08.py --seeds 5\n--curve" in showing[0]
    assert 'CURVE_FIGURE = ROOT / "exercise_08" / "figures" / "learning_curve.png"' in bench
    assert (ROOT / "exercise_08" / "figures" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_the_final_models_are_compared_under_the_same_recipe() -> None:
    """Section 8 trains the final recipe from scratch too: same labels, augmentation, epochs."""
    cells = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c.source
        for c in nbformat.read(ROOT / "exercise_08" / NOTEBOOK, as_version=4).cells
    }
    transfer, scratch = cells["train_final"], cells["train_final_scratch"]

    for argument in ("all_labeled,", "epochs=FINAL_EPOCHS,", "lr=CLASSIFIER_LR,", "seed=SEED,"):
        assert argument in transfer and argument in scratch, argument
    assert "transform=digit_augmentation()," in transfer
    assert "transform=digit_augmentation()," in scratch
    assert "Classifier(Encoder(LATENT_DIM, HIDDEN_SIZES))" in scratch
    assert "if AUTOGRADING:" in scratch, "under nbgrader nothing trains"


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
    text = stdout_of(trained)
    assert "Final model: public test accuracy" in text
    assert "Final recipe from scratch: public test accuracy" in text
    assert graded_cells_writing_to_stderr(trained) == []
    assert [path.exists() for path in repository_outputs] == existed
    # nbclient did not save the notebook, so the hand-in cell refused the stale file on disk,
    # saying that the cells ran but were not saved (not that they never ran).
    assert (
        "exercise_08.zip NOT written: autoencoder.ipynb on disk is older than "
        "models/classifier.pt2: your cells ran, but the notebook was not saved after that run; "
        "save the notebook with File > Save, then run this cell again." in text
    )
    assert values_left_by_graded_cells(trained) == {}
    assert not (folder / "exercise_08.zip").exists()

    # The student saves (File > Save) and runs the hand-in cell again.
    assert "hand in this zip" in save_and_hand_in(trained, folder / NOTEBOOK, env)
    names = set(zipfile.ZipFile(folder / "exercise_08.zip").namelist())
    assert {NOTEBOOK, "models/classifier.pt2", "models/autoencoder.pt"} <= names
    assert "exercise_code/networks.py" in names

    # Under nbgrader's autograding the same notebook loads the saved models instead of training.
    (folder / "exercise_08.zip").unlink()
    graded = execute(folder, {**env, "NBGRADER_EXECUTION": "autograde"})
    text = stdout_of(graded)
    assert graded_cells_writing_to_stderr(graded) == []
    assert "autograding: True" in text
    assert "Autoencoder after" not in text, "the autoencoder must not train under autograding"
    assert "Saved the classifier" not in text
    assert "Final recipe from scratch" not in text
    assert not (folder / "exercise_08.zip").exists()
    assert json.loads((folder / "models" / "final_history.json").read_text())["train_loss"]


@pytest.mark.slow
def test_validate_without_saved_models_says_to_run_the_whole_notebook_first(
    tmp_path: Path, student_data_dir: Path
) -> None:
    """Real ``nbgrader validate`` on the solved notebook that was never run (no models/)."""
    folder = copy_exercise(tmp_path)
    env = {**os.environ, "COURSE_DATA_DIR": str(student_data_dir)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(BIN / "nbgrader"), "validate", NOTEBOOK, "--Execute.timeout=600"],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    report = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)

    failed = report.split("The following cell failed:")[1:]
    assert len(failed) == 2, report
    for part in failed:
        assert RUN_ALL_FIRST in part, part
    assert "NameError" not in report
    assert "checks.check_trained_autoencoder" in failed[0]
    assert "checks.check_saved_classifier" in failed[1]


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
