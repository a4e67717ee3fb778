"""Trusted checks: every test point is decided here, in the grader's own process, from data.

For each graded cell (``grade_id``) of an assignment, the assignment's ``grading/`` folder (next
to its notebook, never released) holds the two halves of the cell's check:

- ``grading/probes.py``: ``run(check, seed, files) -> dict`` runs in a fresh sandboxed process
  forked from the warm parent (:mod:`autograder.sandbox`), imports the student's modules and
  returns data for inputs drawn from ``seed``;
- ``grading/verdicts.py``: ``judge(check, data, context) -> (passed, message)`` compares that
  data with the reference solution on the same inputs; ``JUDGES`` lists the cells it decides,
  and (exercise_08) ``MODEL_CHECK`` names the cell decided from the handed-in model's logits.

Each probe also runs the cell's PUBLIC check (the notebook's own public line, the given checks
module with its default arguments) on the same code and writes ``public_check``: ``"passed"``,
the first line of what it raised, or ``"none"`` for a cell whose public check needs what the
probe does not have. That entry decides no point: it is read here (:func:`public_check_result`)
for the flag only, so that a flag means "the notebook's test passed where the same public check
fails on this code", not "a hidden check caught what the lenient public one let through".

The seed of a check is an HMAC of the course's secret key (``data/hidden/course_key``), the
submission's hash and the cell: the student cannot know it before grading, and grading the same
submission again draws the same inputs (the same verdicts). A probe that crashes, hangs, runs
out of memory or writes garbage gets 0 points for its cell with one sentence.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from .. import course
from ..core.assignment import load_module, missing_names
from ..core.errors import AutograderError
from ..exercise_modules import exercise_code_module
from ..sandbox import Sandbox, untrusted

GRADING_FOLDER = "grading"
MAX_PROBE_JSON_BYTES = 1_000_000
MAX_PROBE_ARRAY_BYTES = 64 * 2**20
MAX_PROBE_UNPACKED_BYTES = 128 * 2**20
"""What a probe's ``data.npz`` may unpack to, all arrays together (its file is at most
MAX_PROBE_ARRAY_BYTES; a deflated member could otherwise inflate about 1000 times)."""

_SPLITS: dict[tuple[str, str], object] = {}
"""Public splits loaded so far, by (data folder, name): loaded once per grading process, not once
per submission (the unlabeled split alone takes about a second)."""


@dataclass
class Context:
    """What a verdict may use: the seed, the reference solution and the public splits."""

    assignment: str
    seed: int
    data_dir: Path

    def reference(self, module: str) -> ModuleType:
        """A module of the assignment's SOURCE ``exercise_code`` (the reference solution)."""
        return exercise_code_module(self.assignment, module)

    def split(self, name: str):
        """A public split of exercise_08's data (``images``, ``labels``), loaded once per
        process; verdicts only read it."""
        key = (str(Path(self.data_dir).resolve()), name)
        if key not in _SPLITS:
            data = exercise_code_module("exercise_08", "data")
            _SPLITS[key] = data.load_split(name, self.data_dir)
        return _SPLITS[key]


@dataclass(frozen=True)
class CellVerdict:
    """The trusted outcome of one graded cell: points and, if any were lost, why."""

    notebook: str
    cell: str
    score: float
    max_score: float
    message: str = ""


def grading_dir(assignment: str) -> Path:
    return course.exercise_dir(assignment) / GRADING_FOLDER


def probes_path(assignment: str) -> Path:
    return grading_dir(assignment) / "probes.py"


def verdicts(assignment: str) -> ModuleType:
    """``<exercise>/grading/verdicts.py``, imported once per folder as part of its package; it
    must provide what :mod:`autograder.core.assignment` writes down (else ``AutograderError``)."""
    folder = grading_dir(assignment)
    name = f"_grading_{assignment}_{hashlib.sha256(str(folder).encode()).hexdigest()[:12]}"
    package = load_module(name, folder / "__init__.py", folder)
    module = load_module(f"{package.__name__}.verdicts", folder / "verdicts.py")
    missing = missing_names(module, with_model=assignment in course.HIDDEN_CELL)
    if missing:
        raise AutograderError(
            f"{folder / 'verdicts.py'} lacks {', '.join(missing)}: see "
            "autograder/core/assignment.py for what an exercise's grading/ must provide."
        )
    return module


def check_seed(key: bytes, submission_digest: str, cell: str) -> int:
    """The seed of ``cell``'s inputs for one submission: secret, and the same every time."""
    digest = hmac.new(key, f"{submission_digest}:{cell}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:6], "big")


@dataclass(frozen=True)
class ProbeData:
    """What a probe wrote, read as data: ``values`` (``data.json`` merged with the arrays of
    ``data.npz``), or None and ``problem``, a phrase saying why the data is unusable."""

    values: dict | None
    problem: str = ""


def load_probe_data(folder: Path) -> ProbeData:
    """Read a probe's output folder with the bounded readers of :mod:`.sandbox.untrusted`.

    Never raises: a missing, oversized, over-deep or bomb-like file, an object dtype, even a
    MemoryError while reading, comes back as ``ProbeData(None, problem)``.
    """
    try:
        values = untrusted.load_json(folder, "data.json", MAX_PROBE_JSON_BYTES)
        arrays = untrusted.load_arrays(
            folder, "data.npz", MAX_PROBE_ARRAY_BYTES, MAX_PROBE_UNPACKED_BYTES
        )
    except untrusted.UnusableData as error:
        return ProbeData(None, str(error))
    except Exception as error:  # MemoryError, or a reader bug: still this submission's data
        return ProbeData(None, f"its data could not be read ({type(error).__name__})")
    return ProbeData({**values, **arrays})


def read_probe_data(folder: Path) -> dict | None:
    """What a probe wrote (see :func:`load_probe_data`), or None; never raises."""
    return load_probe_data(folder).values


PUBLIC_CHECK_KEY = "public_check"
"""The entry of a probe's data holding what the cell's public check said when the probe ran it."""
PUBLIC_CHECK_PASSED = "passed"
NO_PUBLIC_CHECK = "none"
"""What a probe writes for a cell whose public check it cannot run (it needs the notebook's
trained model in memory and data the probe does not have)."""


@dataclass(frozen=True)
class Judgement:
    """The trusted outcome of one check: passed, or the one sentence saying why not.

    ``public_passed`` and ``poisoned`` are for the flag only, never for points (see
    :attr:`suspect`); two judgements are equal when their outcome (passed, message) is.
    """

    passed: bool
    message: str = ""
    public_passed: bool | None = field(default=None, compare=False)
    """What the probe's run of the cell's public check said: True (it passed), False (it failed
    on this code), None (the cell has no public check the probe can run, or no data came back).
    Written by the sandbox: code that makes it say "passed" only loses its flag."""
    poisoned: bool = field(default=False, compare=False)
    """The probe's data was unusable (a bomb, oversized, the wrong types for the verdict) or not
    what the probe writes (no public-check entry): never an honest mistake."""

    @property
    def suspect(self) -> bool:
        """Whether this outcome points at tampering when the notebook's own test of the cell
        passed: it lost points and the probe's run of the same public check failed, or its data
        was poisoned. Not when only the trusted check's other inputs caught the mistake."""
        return not self.passed and (self.public_passed is False or self.poisoned)


def public_check_result(values: dict) -> tuple[bool | None, bool]:
    """``(public_passed, poisoned)`` from a probe's data (see :class:`Judgement`): the entry
    :data:`PUBLIC_CHECK_KEY` is ``"passed"``, ``"none"`` or the one line of the public check's
    error; anything else (missing, not text) means the data is not what the probe wrote."""
    said = values.get(PUBLIC_CHECK_KEY)
    if not isinstance(said, str) or not said:
        return None, True
    if said == PUBLIC_CHECK_PASSED:
        return True, False
    if said == NO_PUBLIC_CHECK:
        return None, False
    return False, False


def unusable_data_message(cell: str, problem: str) -> str:
    """The sentence for probe data that could not be used."""
    because = f" ({problem})" if problem else ""
    return (
        f"The check of {cell} got no usable data from your code{because}, so it got no points; "
        "return ordinary numbers and tensors from the functions it checks."
    )


def judge_probe(verdicts: ModuleType, cell: str, data: ProbeData, context: Context) -> Judgement:
    """The verdict of ``cell`` on its probe's data; never raises.

    Unusable data, an error the student's code raised in the probe, and any exception of the
    verdict itself (data of an unexpected form, MemoryError, RecursionError) each fail the cell
    with one sentence.
    """
    if data.values is None:
        return Judgement(False, unusable_data_message(cell, data.problem), poisoned=True)
    public_passed, poisoned = public_check_result(data.values)
    raised = probe_error(data.values, cell)
    if raised:
        return Judgement(False, raised, public_passed, poisoned)
    judged = _judged(cell, lambda: verdicts.judge(cell, data.values, context))
    return replace(judged, public_passed=public_passed, poisoned=judged.poisoned or poisoned)


def judge_saved_model(
    verdicts: ModuleType, cell: str, logits, singles, batched, context: Context
) -> Judgement:
    """``verdicts.judge_saved_classifier`` on the model's public logits; never raises.

    When it fails, ``verdicts.public_saved_classifier`` (if there is one) says whether the
    notebook's public line fails on the same logits (``public_passed``, for the flag only)."""
    judged = _judged(
        cell, lambda: verdicts.judge_saved_classifier(logits, singles, batched, context)
    )
    public = getattr(verdicts, "public_saved_classifier", None)
    if judged.passed or public is None:
        return judged
    try:
        said = public(logits, singles, batched, context)
    except Exception:
        said = None
    return replace(judged, public_passed=said if isinstance(said, bool) else None)


def _judged(cell: str, judge) -> Judgement:
    try:
        passed, message = judge()
    except Exception as error:
        return Judgement(
            False,
            f"The check of {cell} could not use what your code returned "
            f"({type(error).__name__}), so it got no points; run the notebook's public check of "
            "that cell.",
            poisoned=True,
        )
    if passed is not True:
        return Judgement(False, str(message or f"The check of {cell} failed."))
    return Judgement(True, "")


def probe_problem(outcome, cell: str, sandbox: Sandbox) -> str:
    """One sentence when a probe did not end normally (the student's code is why), else ""."""
    if outcome.over_memory:
        return (
            f"Checking {cell} needed more than {sandbox.memory_bytes // 2**20:,} MB of memory, so "
            "it got no points; look for huge tensors in your exercise_code modules."
        )
    if outcome.over_processes:
        return (
            f"Checking {cell} started more processes or threads than allowed, so it got no "
            "points; do not start processes in a loop in your exercise_code modules."
        )
    if outcome.timed_out:
        return (
            f"Checking {cell} took longer than {sandbox.timeout_s:g} s, so it got no points; look "
            "for an endless loop or very slow code in your exercise_code modules."
        )
    if outcome.over_disk_quota:
        return f"Checking {cell} wrote {outcome.over_disk_quota}, so it got no points."
    if outcome.returncode != 0:
        return (
            f"Your code ended the process that checks {cell} (exit status {outcome.returncode}), "
            "so it got no points; do not exit, kill or crash the Python process in your modules."
        )
    return ""


def probe_error(data: dict, cell: str) -> str:
    """One sentence when the student's code raised inside the probe of ``cell``, else ""."""
    error = data.get("probe_error")
    if not isinstance(error, str):
        return ""
    return (
        f"Your code raised {error} while {cell} was checked, so it got no points; run the "
        "notebook's check of that cell to see where."
    )


def probe_args(code: Path, files: Path, out: Path, cell: str, seed: int) -> dict:
    """The arguments of the ``probe`` payload (:func:`autograder.sandbox.worker.run_probe`)."""
    return {"code": str(code), "files": str(files), "out": str(out), "check": cell, "seed": seed}


def probe_env(out: Path) -> dict[str, str]:
    """Environment changes for a probe: its own folder as home."""
    return {"HOME": str(out), "TMPDIR": "/tmp", "MPLBACKEND": "Agg"}


def make_probe_folder(root: Path, name: str, uid: int | None) -> Path:
    """A fresh, empty folder for one probe's output, owned by the sandbox user."""
    folder = root / name
    folder.mkdir(mode=0o700)
    if uid is not None:
        os.chown(folder, uid, uid)
    return folder
