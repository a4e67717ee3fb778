"""Saving the models and packing the submission zip (given).

Paths are relative to the exercise folder (the folder of the notebook), not to the current
working directory, so the functions work the same from the notebook, a terminal or the grader.

Under nbgrader (``NBGRADER_EXECUTION`` is set) the notebook loads the saved models instead of
training; ``require_saved`` says what to run when one is missing.
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from pathlib import Path

import torch
from torch import nn

from .model_rules import (
    IMAGE_SHAPE,
    MAX_FILE_BYTES,
    ModelRuleError,
    check_model_file,
    load_checked_model,
)

EXERCISE_DIR = Path(__file__).resolve().parent.parent
MODEL_PATH = "models/classifier.pt2"
AUTOENCODER_PATH = "models/autoencoder.pt"
# Other files the notebook reads back under autograding (saved autoencoder, loss histories).
EXTRA_MODEL_SUFFIXES = (".pt", ".json")
MADE_BY = {
    AUTOENCODER_PATH: "the autoencoder's training cell (section 6)",
    MODEL_PATH: "the final model's training cell (section 8)",
}
"""The notebook cell that writes each saved model."""


def _in_exercise(path: str | Path) -> Path:
    """A path relative to the exercise folder (absolute paths are kept)."""
    path = Path(path)
    return path if path.is_absolute() else EXERCISE_DIR / path


def save_model(model: nn.Module, path: str | Path = MODEL_PATH) -> Path:
    """Export the classifier with torch.export, save it, and check it against the rules.

    A copy of the model is moved to the CPU, put in eval mode and traced with a dynamic batch
    dimension, so the saved program accepts images of shape (N, 1, 28, 28) for any N. The
    model passed in is not changed.

    Inputs:
    - model: the classifier; forward maps (N, 1, 28, 28) images in [0, 1] to (N, 10) logits.
    - path: where to write the file, relative to the exercise folder.

    Returns the absolute path of the saved file.
    Raises ModelRuleError (and removes the file) if the model breaks a rule.
    """
    path = _in_exercise(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    exported_model = copy.deepcopy(model).cpu().eval()
    example = torch.rand((4, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    try:
        program = torch.export.export(exported_model, (example,), dynamic_shapes=({0: batch},))
    except Exception as error:
        raise ModelRuleError(
            f"torch.export could not trace the model ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); keep forward to tensor "
            "operations that work for any batch size."
        ) from error
    torch.export.save(program, path)
    try:
        check_model_file(path)
    except ModelRuleError:
        path.unlink(missing_ok=True)
        raise
    size_mb = path.stat().st_size / 1e6
    print(f"Saved the classifier to {path} ({size_mb:.1f} MB); it follows the rules.")
    return path


def _submission_files() -> list[Path]:
    """The files that go into the zip, relative to the exercise folder."""
    files = sorted(p.relative_to(EXERCISE_DIR) for p in EXERCISE_DIR.glob("*.ipynb"))
    files += sorted(p.relative_to(EXERCISE_DIR) for p in EXERCISE_DIR.glob("exercise_code/*.py"))
    models = EXERCISE_DIR / "models"
    for extra in sorted(models.glob("*")) if models.is_dir() else []:
        if extra.is_file() and extra.suffix in EXTRA_MODEL_SUFFIXES:
            if extra.stat().st_size > MAX_FILE_BYTES:
                raise ModelRuleError(
                    f"models/{extra.name} has {extra.stat().st_size:,} bytes, more than the "
                    f"limit of {MAX_FILE_BYTES:,}; save a smaller model or delete the file."
                )
            files.append(extra.relative_to(EXERCISE_DIR))
    files.append(Path(MODEL_PATH))
    return files


def notebook_problem(notebook: Path, newest_model: Path | None) -> str | None:
    """Why ``notebook`` as saved on disk is not ready to hand in, or None if it is.

    It is not when it was saved before ``newest_model`` was written (the cells ran, but the
    run that made the model is not saved in the file: the usual case right after Run All), or
    when its graded cells were never run in the saved file.
    """
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{notebook.name} could not be read as a notebook"
    graded = [
        cell
        for cell in cells
        if cell.get("cell_type") == "code"
        and cell.get("metadata", {}).get("nbgrader", {}).get("grade")
    ]
    if newest_model is not None and notebook.stat().st_mtime < newest_model.stat().st_mtime:
        model = newest_model.relative_to(EXERCISE_DIR).as_posix()
        return (
            f"{notebook.name} on disk is older than {model}: your cells ran, but the notebook "
            "was not saved after that run"
        )
    if any(cell.get("execution_count") is None for cell in graded):
        return f"{notebook.name} on disk has graded cells that were never run"
    return None


def create_submission(zip_path: str | Path = "exercise_08.zip") -> Path | None:
    """Check the saved classifier and the saved notebook, then write the zip to hand in.

    The zip holds the notebook(s), exercise_code/*.py, models/classifier.pt2 and the small
    files in models/ the notebook loads under autograding (e.g. models/autoencoder.pt). It takes
    the notebook as it is on disk, so the notebook must be saved after the run that made the
    models: otherwise this prints why and writes nothing.

    Inputs:
    - zip_path: where to write the zip, relative to the exercise folder.

    Returns the absolute path of the zip, or None when the notebook on disk is not ready.
    Raises ModelRuleError if the classifier is missing or breaks a rule.
    """
    check_model_file(_in_exercise(MODEL_PATH))
    files = _submission_files()
    zip_path = _in_exercise(zip_path)
    models = [EXERCISE_DIR / f for f in files if f.parts[0] == "models"]
    newest = max(models, key=lambda path: path.stat().st_mtime)
    for notebook in sorted(EXERCISE_DIR.glob("*.ipynb")):
        problem = notebook_problem(notebook, newest)
        if problem:
            print(
                f"{zip_path.name} NOT written: {problem}; save the notebook with File > Save, "
                "then run this cell again."
            )
            return None
    partial = zip_path.with_name(zip_path.name + ".part")  # renamed only once complete
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in files:
                archive.write(EXERCISE_DIR / relative, arcname=relative.as_posix())
        os.replace(partial, zip_path)
    finally:
        partial.unlink(missing_ok=True)
    print(f"Wrote {zip_path} with {len(files)} files; hand in this zip.")
    return zip_path


def require_saved(path: str) -> Path:
    """The absolute path of the saved file ``path`` (e.g. MODEL_PATH); if it is missing, a
    FileNotFoundError saying what to run to make it.

    Under nbgrader's Validate (``NBGRADER_EXECUTION=validate``) the notebook loads the saved
    models instead of training them, so they must exist before you validate.
    """
    full_path = _in_exercise(path)
    if full_path.is_file():
        return full_path
    grading = os.environ.get("NBGRADER_EXECUTION")
    if grading == "validate":  # on its own line: nbgrader's report cuts lines at 87 characters
        todo = "\nrun the whole notebook first (Run > Run All Cells), then Validate"
    elif grading:
        todo = (
            "run the whole notebook, save it, run create_submission() (section 9) and hand in "
            "the new zip"
        )
    else:
        todo = f"run {MADE_BY.get(path, 'the cell that saves it')} first"
    raise FileNotFoundError(f"No saved {path}: {todo}.")


def load_classifier(path: str = MODEL_PATH) -> torch.nn.Module:
    """The saved classifier, checked against the rules and loaded as a module (eval mode)."""
    return load_checked_model(require_saved(path)).module()


def save_autoencoder(
    autoencoder: nn.Module, history: dict, path: str | Path = AUTOENCODER_PATH
) -> Path:
    """Save the autoencoder's sizes, weights and training history (a small ``.pt`` file).

    The notebook loads it back under autograding instead of training again.
    Returns the absolute path of the file.
    """
    path = _in_exercise(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "latent_dim": autoencoder.latent_dim,
            "hidden_sizes": list(autoencoder.hidden_sizes),
            "state_dict": autoencoder.state_dict(),
            "history": history,
        },
        path,
    )
    print(f"Saved the autoencoder to {path}.")
    return path


def load_autoencoder(path: str | Path = AUTOENCODER_PATH) -> tuple[nn.Module, dict]:
    """Load what save_autoencoder wrote: returns (the autoencoder in eval mode, its history)."""
    # Imported here so that saving and zipping work even while networks.py is unfinished.
    from .networks import Autoencoder

    saved = torch.load(require_saved(str(path)), weights_only=True)
    autoencoder = Autoencoder(saved["latent_dim"], tuple(saved["hidden_sizes"]))
    autoencoder.load_state_dict(saved["state_dict"])
    return autoencoder.eval(), saved["history"]


def save_history(name: str, history: dict) -> Path:
    """Write a training history to models/<name>_history.json (plots use it under autograding)."""
    path = _in_exercise(f"models/{name}_history.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(history))
    return path


def load_history(name: str) -> dict:
    """Read what save_history wrote; an empty history if there is none."""
    path = _in_exercise(f"models/{name}_history.json")
    return json.loads(path.read_text()) if path.is_file() else {}
