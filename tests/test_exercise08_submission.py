"""save_model, the model rules and create_submission, with real torch.export round trips."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exercise_08.exercise_code import model_rules, submission  # noqa: E402
from exercise_08.exercise_code.model_rules import ModelRuleError  # noqa: E402


class LinearClassifier(nn.Module):
    """A valid classifier: flatten, one hidden layer, 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3)
        self.head = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(1))


class HugeHalfClassifier(nn.Module):
    """More than 5,000,000 parameters in float16, so the file stays under the byte limit."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(784, 7000, dtype=torch.float16)
        self.head = nn.Linear(7000, 10, dtype=torch.float16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x.flatten(1).half())).float()


class FiveClassClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class NaNClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * float("nan")


def test_saved_model_round_trips_with_any_batch_size(tmp_path: Path) -> None:
    model = LinearClassifier()
    model.train()
    path = submission.save_model(model, tmp_path / "classifier.pt2")

    assert path == tmp_path / "classifier.pt2" and path.is_file()
    assert model.training, "save_model must not change the caller's model"
    model_rules.check_model_file(path)
    program = model_rules.load_checked_model(path)
    images = torch.rand(13, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images), model.eval()(images))


def test_model_rules_loads_standalone_by_file_path(tmp_path: Path) -> None:
    """The autograder imports model_rules.py by path, without the exercise_code package."""
    spec = importlib.util.spec_from_file_location(
        "standalone_rules", ROOT / "exercise_08/exercise_code/model_rules.py"
    )
    rules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rules)
    path = submission.save_model(LinearClassifier(), tmp_path / "classifier.pt2")

    rules.check_model_file(path)
    assert rules.MAX_PARAMETERS == 5_000_000 and rules.MAX_FILE_BYTES == 20_000_000


def test_convolution_model_is_refused_and_not_left_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt2"
    with pytest.raises(ModelRuleError, match="only linear layers"):
        submission.save_model(ConvClassifier(), path)
    assert not path.exists()


def test_model_with_too_many_parameters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelRuleError, match=r"parameters, more than the limit of 5,000,000"):
        submission.save_model(HugeHalfClassifier(), tmp_path / "classifier.pt2")


def test_too_big_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_rules, "MAX_FILE_BYTES", 1_000)
    with pytest.raises(ModelRuleError, match="bytes, more than the limit"):
        submission.save_model(LinearClassifier(), tmp_path / "classifier.pt2")


def test_wrong_output_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelRuleError, match=r"returned shape \(1, 5\) for 1 images"):
        submission.save_model(FiveClassClassifier(), tmp_path / "classifier.pt2")


def test_nan_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelRuleError, match="NaN or infinite"):
        submission.save_model(NaNClassifier(), tmp_path / "classifier.pt2")


def test_missing_and_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelRuleError, match="No saved model"):
        model_rules.check_model_file(tmp_path / "missing.pt2")
    foreign = tmp_path / "foreign.pt2"
    torch.save(LinearClassifier().state_dict(), foreign)
    with pytest.raises(ModelRuleError, match="not a model saved with torch.export"):
        model_rules.check_model_file(foreign)


def test_check_outputs_names_the_problem() -> None:
    model_rules.check_outputs(torch.zeros(3, 10), 3)
    with pytest.raises(ModelRuleError, match="not a tensor"):
        model_rules.check_outputs((torch.zeros(3, 10),), 3)
    with pytest.raises(ModelRuleError, match="expected \\(3, 10\\)"):
        model_rules.check_outputs(torch.zeros(2, 10), 3)
    with pytest.raises(ModelRuleError, match="float logits"):
        model_rules.check_outputs(torch.zeros(3, 10, dtype=torch.long), 3)
    with pytest.raises(ModelRuleError, match="NaN or infinite"):
        model_rules.check_outputs(torch.full((3, 10), float("inf")), 3)


@pytest.fixture
def exercise_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of exercise_08 without models/ that submission.py treats as the exercise folder."""
    copy = tmp_path / "exercise_08"
    shutil.copytree(
        ROOT / "exercise_08",
        copy,
        ignore=shutil.ignore_patterns(
            "models", "*.zip", "__pycache__", ".ipynb_checkpoints", "grading"
        ),
    )
    monkeypatch.setattr(submission, "EXERCISE_DIR", copy)
    return copy


def saved_after_a_run(folder: Path) -> None:
    """What File > Save after running the notebook leaves on disk: executed cells, a new file."""
    for path in folder.glob("*.ipynb"):
        notebook = json.loads(path.read_text())
        for number, cell in enumerate(c for c in notebook["cells"] if c["cell_type"] == "code"):
            cell["execution_count"] = number + 1
        path.write_text(json.dumps(notebook))
        later = max(p.stat().st_mtime for p in (folder / "models").glob("*")) + 1
        os.utime(path, (later, later))


def test_create_submission_refuses_without_a_model(exercise_copy: Path) -> None:
    with pytest.raises(ModelRuleError, match=r"the final model \(section 8\)"):
        submission.create_submission()
    assert not (exercise_copy / "exercise_08.zip").exists()


def test_create_submission_right_after_run_all_says_the_run_is_not_saved_yet(
    exercise_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    """Run All made the models, the notebook on disk is the unrun one from before: the cells
    did run, so "never run" would be wrong; the notebook was not saved."""
    submission.save_model(LinearClassifier())

    assert submission.create_submission() is None
    assert capsys.readouterr().out.splitlines()[-1] == (
        "exercise_08.zip NOT written: autoencoder.ipynb on disk is older than "
        "models/classifier.pt2: your cells ran, but the notebook was not saved after that run; "
        "save the notebook with File > Save, then run this cell again."
    )
    assert not (exercise_copy / "exercise_08.zip").exists()


def test_create_submission_refuses_a_notebook_whose_graded_cells_never_ran(
    exercise_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    """Saved after the models were made, but without running its graded cells."""
    submission.save_model(LinearClassifier())
    notebook = exercise_copy / "autoencoder.ipynb"
    later = (exercise_copy / "models" / "classifier.pt2").stat().st_mtime + 60
    os.utime(notebook, (later, later))

    assert submission.create_submission() is None
    assert capsys.readouterr().out.splitlines()[-1] == (
        "exercise_08.zip NOT written: autoencoder.ipynb on disk has graded cells that were never "
        "run; save the notebook with File > Save, then run this cell again."
    )
    assert not (exercise_copy / "exercise_08.zip").exists()


def test_create_submission_refuses_a_notebook_saved_before_the_model(
    exercise_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    submission.save_model(LinearClassifier())
    saved_after_a_run(exercise_copy)
    model = exercise_copy / "models" / "classifier.pt2"
    newer = (exercise_copy / "autoencoder.ipynb").stat().st_mtime + 60
    os.utime(model, (newer, newer))  # the model was saved again after the notebook

    assert submission.create_submission() is None
    assert capsys.readouterr().out.splitlines()[-1] == (
        "exercise_08.zip NOT written: autoencoder.ipynb on disk is older than "
        "models/classifier.pt2: your cells ran, but the notebook was not saved after that run; "
        "save the notebook with File > Save, then run this cell again."
    )
    assert not (exercise_copy / "exercise_08.zip").exists()


def test_create_submission_zips_notebook_code_and_models(exercise_copy: Path) -> None:
    saved = submission.save_model(LinearClassifier())
    torch.save({"state_dict": {}}, exercise_copy / "models/autoencoder.pt")
    (exercise_copy / "models/notes.txt").write_text("not handed in")
    saved_after_a_run(exercise_copy)

    zip_path = submission.create_submission()

    assert saved == exercise_copy / "models/classifier.pt2"
    assert zip_path == exercise_copy / "exercise_08.zip"
    names = set(zipfile.ZipFile(zip_path).namelist())
    assert {"models/classifier.pt2", "models/autoencoder.pt"} <= names
    assert "exercise_code/model_rules.py" in names and "exercise_code/submission.py" in names
    assert "models/notes.txt" not in names
    expected_notebooks = {p.name for p in exercise_copy.glob("*.ipynb")}
    assert expected_notebooks <= names


def test_autoencoder_and_history_round_trip(exercise_copy: Path) -> None:
    from exercise_08.exercise_code.networks import Autoencoder

    with pytest.raises(FileNotFoundError, match=r"training cell \(section 6\)"):
        submission.load_autoencoder()
    autoencoder = Autoencoder(latent_dim=3, hidden_sizes=(8,))
    history = {"train_loss": [0.5, 0.25], "val_loss": [0.4, 0.3], "batch_loss": [0.6]}
    submission.save_autoencoder(autoencoder, history)
    submission.save_history("final", {"train_loss": [1.0]})

    loaded, loaded_history = submission.load_autoencoder()
    images = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), autoencoder.eval()(images))
    assert loaded_history == history and not loaded.training
    assert submission.load_history("final") == {"train_loss": [1.0]}
    assert submission.load_history("missing") == {}


@pytest.mark.parametrize(
    ("grading", "says"),
    [
        (None, "No saved models/classifier.pt2: run the final model's training cell (section 8) "),
        ("validate", "run the whole notebook first (Run > Run All Cells), then Validate."),
        ("autograde", "run create_submission() (section 9) and hand in the new zip."),
    ],
)
def test_a_missing_saved_model_says_what_to_run(
    exercise_copy: Path, monkeypatch: pytest.MonkeyPatch, grading: str | None, says: str
) -> None:
    if grading:
        monkeypatch.setenv("NBGRADER_EXECUTION", grading)
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    with pytest.raises(FileNotFoundError) as missing:
        submission.load_classifier()
    assert says in str(missing.value)
    submission.save_model(LinearClassifier())
    assert submission.load_classifier()(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_an_interrupted_create_submission_keeps_the_previous_zip(
    exercise_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submission.save_model(LinearClassifier())
    saved_after_a_run(exercise_copy)
    zip_path = submission.create_submission()
    before = zip_path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        submission.create_submission()
    assert zip_path.read_bytes() == before
    assert not list(exercise_copy.glob("*.part"))
