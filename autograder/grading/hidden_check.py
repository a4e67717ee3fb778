"""The model check: the handed-in classifier on the hidden test set (and the public splits).

1. Here, in the grader's process, ``models/classifier.pt2`` is checked as data by the course's
   model validator (the SOURCE ``exercise_code/model_rules.py``: no pickles, no custom objects,
   only the allowed operators); a model that breaks a rule gets the rule's sentence, which is
   what the student's ``save_model`` and ``create_submission()`` say too.
2. In a sandbox forked from the warm parent, the validated model runs on one array of images:
   the hidden test images first, then the public ones a cell's verdict needs (the ``model``
   payload of :mod:`autograder.sandbox.worker`). That process never sees a label.
3. Here, after it has exited, the logits are read as data and the accuracy is computed:

       accuracy = (1/N) * sum_i [argmax_k logits[i, k] == label[i]]

   all the hidden points if ``accuracy >= pass_accuracy``, none otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ..core.text import clean_text
from ..sandbox import Outcome, Sandbox, WarmParent, untrusted
from .trusted import probe_env, probe_problem

MODEL_RELATIVE_PATH = "models/classifier.pt2"
SINGLES = 5
"""The first images are also run one at a time: a model's output must not depend on its batch."""


@dataclass
class ModelRun:
    """What running the handed-in model gave: its logits for every image, or why there are none.

    ``rule`` is the sentence of a broken model rule, ``problem`` that of a run that failed.
    """

    logits: np.ndarray | None = None
    singles: np.ndarray | None = None
    rule: str = ""
    problem: str = ""
    seconds: float = 0.0


@dataclass
class HiddenResult:
    """Outcome of the hidden check: ``accuracy`` is ``None`` when the model was not measured."""

    accuracy: float | None
    score: float
    max_score: float
    message: str
    seconds: float = 0.0


def run_model(
    warm: WarmParent,
    rules: ModuleType,
    model: Path,
    images: Path,
    count: int,
    folder: Path,
    sandbox: Sandbox,
) -> ModelRun:
    """Check ``model`` here, then run it in ``sandbox`` on ``images`` (an ``.npy`` of ``count``
    float32 images (N, 1, 28, 28) in [0, 1]); ``folder`` is an empty folder the sandbox may
    write (its output)."""
    if not model.is_file() or model.is_symlink():
        return ModelRun(
            rule=f"No {MODEL_RELATIVE_PATH} in your submission: run the cell that saves the final "
            "model (section 8), then create the zip again with create_submission()."
        )
    rule = check_archive(rules, model)
    if rule:
        return ModelRun(rule=rule)
    args = {"model": str(model), "images": str(images), "out": str(folder), "singles": SINGLES}
    outcome = warm.run(
        "model", args, sandbox, folder, folder.with_suffix(".log"), probe_env(folder)
    )
    return _read_run(outcome, folder, count, sandbox, rules)


def check_archive(rules: ModuleType, model: Path) -> str:
    """The sentence of the rule ``model`` breaks, or "" when the validator accepts it.

    Never raises: the validator answers every archive with a ModelRuleError of its own, and
    anything else it might raise on hostile bytes (a bug of the validator, MemoryError) is
    answered here as an unreadable model file, so the submission keeps its other points.
    """
    try:
        rules.check_model_archive(model)
    except rules.ModelRuleError as error:
        return clean_text(str(error), 1000)
    except Exception as error:
        return (
            f"{MODEL_RELATIVE_PATH} could not be read as a valid exported program "
            f"({type(error).__name__}); save the final model again with save_model (section 8) "
            "and create the zip again with create_submission()."
        )
    return ""


def _read_run(
    outcome: Outcome, folder: Path, count: int, sandbox: Sandbox, rules: ModuleType
) -> ModelRun:
    """The logits the model run wrote, checked here with the rules' ``check_outputs``."""
    problem = probe_problem(outcome, "your model", sandbox)
    if problem and outcome.returncode != 0 and not (outcome.timed_out or outcome.over_memory):
        problem = (
            f"Running your saved model on the test images failed (exit status {outcome.returncode})"
            "; check that save_model runs without an error and create the zip again."
        )
    if problem:
        return ModelRun(problem=problem, seconds=outcome.seconds)
    error = (untrusted.read_json(folder, "data.json", 10_000) or {}).get("error")
    limit = count * 64 * 8 + 4096
    logits = untrusted.read_array(folder, "logits.npy", limit)
    singles = untrusted.read_array(folder, "singles.npy", limit)
    if logits is None or singles is None:
        detail = f" ({clean_text(str(error), 200)})" if error else ""
        return ModelRun(
            problem="Running your saved model on the test images failed"
            f"{detail}; check that save_model runs without an error and create the zip again.",
            seconds=outcome.seconds,
        )
    try:
        rules.check_outputs(logits, count)
        rules.check_outputs(singles, SINGLES)
    except rules.ModelRuleError as broken:
        return ModelRun(rule=str(broken), seconds=outcome.seconds)
    return ModelRun(logits=logits, singles=singles, seconds=outcome.seconds)


def hidden_result(run: ModelRun, labels: np.ndarray, points: float, pass_accuracy: float):
    """Score the model's logits on the hidden images (the first ``len(labels)`` rows); the
    message always states the accuracy and the pass mark (shown under the hidden cell in the
    feedback), and a row's message lists only parts that lost points."""
    if run.logits is None:
        return HiddenResult(None, 0.0, points, run.rule or run.problem, run.seconds)
    if not np.isfinite(run.logits).all():
        message = (
            "Your model returned NaN or infinite logits on the hidden test images, so it gets "
            "no hidden points; train it with a smaller learning rate and save it again."
        )
        return HiddenResult(None, 0.0, points, message, run.seconds)
    predicted = run.logits[: len(labels)].argmax(axis=1)
    accuracy = round(float(np.mean(predicted == labels)), 4)
    if accuracy >= pass_accuracy:
        message = (
            f"Your model's accuracy on the hidden test set is {accuracy:.2f}, at least the "
            f"{pass_accuracy:.2f} needed: all {points:g} points."
        )
        return HiddenResult(accuracy, points, points, message, run.seconds)
    message = (
        f"Your model's accuracy on the hidden test set is {accuracy:.2f}, below the "
        f"{pass_accuracy:.2f} needed for these {points:g} points: improve the classifier "
        "(e.g. fine-tune the pretrained encoder) and save it again."
    )
    return HiddenResult(accuracy, 0.0, points, message, run.seconds)
