"""One submission -> :class:`~autograder.core.records.GradeRecord`: :func:`grade_submission`.

In a job folder named by the grader (``job-<n>`` below the workspace, never after a student id):

1. The submission is copied as data into ``code/exercise_code/`` (the given modules from the
   source, then the student modules as handed in: nothing else of the student's, so no package
   can shadow a given module) and ``files/`` (the notebooks and the regular files of
   ``models/``).
2. Each in its own sandbox, under the job's sandbox user id:
   - one probe per graded cell, forked from the warm parent; its verdict is decided here
     (:mod:`autograder.grading.trusted`, the assignment's ``grading/`` folder);
   - exercise_08: the handed-in model, checked here by the model validator and run on the
     hidden and the public images (:mod:`.hidden_check`); accuracies computed here;
   - at the same time, nbgrader's autograde of the notebooks in a throwaway course, for the
     executed notebook in the feedback only: its gradebook and results are never read for
     points. Where its test of a cell passed, the trusted verdict failed and the probe's run of
     the same public check failed too (or the probe's data was poisoned), the record gets a flag.
3. The autograded notebook (hidden tests replaced by the verdicts, student markup neutralized:
   :mod:`autograder.grading.feedback`) goes into ``course/autograded/`` for the feedback; the record
   is returned (the engine stores it, the gradebook is written from the store).

Nothing a sandbox wrote is followed as a path: it is read with :mod:`autograder.sandbox.untrusted`
and deleted with the symlink-safe ``shutil.rmtree``. Before a sandbox user id runs the next job,
every process of it is killed and checked gone.
"""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import course
from ..core.records import GradeRecord, PartResult, Status, Verdict
from ..core.text import clean_text
from ..exercise_modules import exercise_code_module
from ..sandbox import Outcome, Sandbox, SandboxError, clear_user, log_tail, scrubbed_env, untrusted
from . import trusted
from .diagnose import autograde_problem, load_notebook, notebook_results
from .feedback import kept_feedback
from .feedback_cells import tag_skipped
from .hidden_check import MODEL_RELATIVE_PATH, ModelRun, hidden_result, run_model
from .spec import GradingSpec, seed_digest
from .workspace import Workspace

THROWAWAY_STUDENT = "student"
"""The student id inside a throwaway course (never the real id)."""
LOG_TAIL_BYTES = 20_000
MAX_NOTEBOOK_BYTES = 50 * 2**20


class _Job:
    """The folders of one submission's grading (all below ``workspace.temp_root/job-<n>``)."""

    def __init__(self, root: Path, uid: int | None) -> None:
        self.root, self.uid = root, uid
        self.code, self.files, self.autograde = root / "code", root / "files", root / "autograde"

    def output(self, name: str) -> Path:
        return trusted.make_probe_folder(self.root / "out", name, self.uid)


def grade_submission(
    workspace: Workspace,
    student: str,
    submission: str,
    uid: int | None,
    folder: Path | None = None,
    feedback: Path | None = None,
) -> GradeRecord:
    """Grade ``student``'s submission (hash ``submission``) under sandbox ``uid``.

    ``folder`` holds the unpacked submission (default: the course's collected one,
    ``submitted/<student>/<assignment>``); the feedback notebooks go to ``feedback`` (default:
    ``autograded/<student>/<assignment>``). Raises only for a failure of the grader itself (a
    sandbox that cannot be set up): every failure caused by the submission is part of the record.
    """
    spec = workspace.spec
    course.REPO_ROOT = spec.repo_root
    if uid is not None:
        clear_user(uid)
    job = _Job(workspace.temp_root / f"job-{next(workspace.jobs)}", uid)
    job.root.mkdir(mode=0o711)
    (job.root / "out").mkdir(mode=0o711)
    submitted = folder or course.submitted_dir(spec.course_dir, spec.assignment, student)
    target = feedback or course.autograded_dir(spec.course_dir, spec.assignment, student)
    try:
        _copy_submission(workspace, submitted, job)
        autograde: dict = {}
        notebook_thread = threading.Thread(target=_autograde, args=(workspace, job, autograde))
        notebook_thread.start()
        try:
            verdicts, model = _trusted_verdicts(workspace, job, submission)
        finally:
            notebook_thread.join()
        hidden, public_accuracy = None, None
        if spec.hidden_cell is not None:  # before the feedback, which shows its sentence
            hidden, public_accuracy = _hidden_check(workspace, model)
            verdicts[spec.hidden_cell[1]] = Verdict(hidden.score, hidden.max_score, hidden.message)
        if isinstance(autograde.get("error"), SandboxError):
            raise autograde["error"]
        outcome = autograde.get("outcome")
        autograded = job.autograde / "course" / "autograded" / THROWAWAY_STUDENT / spec.assignment
        passed_in_notebook = notebook_results(autograded, spec.notebooks, set(verdicts))
        feedback_note = _keep_feedback(workspace, target, autograded, verdicts)
    finally:
        if uid is not None:
            clear_user(uid)
        shutil.rmtree(job.root, ignore_errors=True)
    parts = [
        PartResult(f"{notebook}: {cell}", verdicts[cell].score, points, verdicts[cell].message)
        for notebook, cell, points in spec.cells
    ]
    flags = flagged_cells(passed_in_notebook, verdicts)
    problem = (
        autograde_problem(outcome, submitted, spec.notebooks, spec.settings) if outcome else None
    )
    status = Status.GRADED
    if problem and problem[0] != "graded":
        status = Status(problem[0])
    if any(v.timed_out for v in verdicts.values()):
        status = Status.TIMEOUT
    notes = " ".join(n for n in (problem[1] if problem else "", feedback_note) if n)
    record = GradeRecord.from_parts(
        status,
        parts,
        spec.hidden_item,
        summary_message(parts, notes),
        hidden_accuracy=hidden.accuracy if hidden is not None else None,
        public_accuracy=public_accuracy,
        flags=flag_text(flags),
    )
    record.student_id = student
    return record


def _hidden_check(workspace: Workspace, model: ModelRun):
    """The hidden points from the graded rows of the hidden set, and the accuracy on its public
    rows (None when there are none or the model gave no usable logits)."""
    spec = workspace.spec
    labels = workspace.hidden_labels
    logits = model.logits
    graded = replace(model, logits=logits[workspace.graded_rows] if logits is not None else None)
    hidden = hidden_result(
        graded,
        labels[workspace.graded_rows],
        spec.points[spec.hidden_cell],
        course.HIDDEN_PASS_ACCURACY,
    )
    public = workspace.public_rows
    if logits is None or not len(public) or not np.isfinite(logits[public]).all():
        return hidden, None
    predicted = logits[public].argmax(axis=1)
    return hidden, round(float(np.mean(predicted == labels[public])), 4)


def internal_error_record(spec: GradingSpec, student: str, error: BaseException) -> GradeRecord:
    """The record of a failure of the grader itself (not the student's fault): retryable."""
    message = clean_text(
        f"Grading failed inside the autograder ({type(error).__name__}: {error}); "
        "ask your instructor to grade your submission again.",
        500,
    )
    parts = [PartResult(f"{nb}: {cell}", 0.0, points, message) for nb, cell, points in spec.cells]
    record = GradeRecord.from_parts(Status.ERROR, parts, spec.hidden_item, message, retryable=True)
    record.student_id = student
    return record


def worker_lost_record(spec: GradingSpec, student: str, tries: int) -> GradeRecord:
    """The record of a submission whose grading took its worker down ``tries`` times."""
    message = (
        f"Grading your submission stopped the grading process {tries} times (it crashed or "
        "used more memory than the grader allows), so it got no points; ask your instructor "
        "to look at it."
    )
    parts = [PartResult(f"{nb}: {cell}", 0.0, points, message) for nb, cell, points in spec.cells]
    record = GradeRecord.from_parts(Status.ERROR, parts, spec.hidden_item, message)
    record.student_id = student
    return record


def summary_message(parts: list[PartResult], notebook_problem: str) -> str:
    """One sentence: the first part that lost points, in the notebook's order."""
    lost = [p for p in parts if p.score < p.max]
    if not lost:
        return notebook_problem
    first = lost[0].reason.rstrip(".")
    more = len(lost) - 1
    if more:
        first += (
            f" ({more} more graded part{'s' if more > 1 else ''} lost points: see the feedback)"
        )
    return clean_text(first + ".", 1000)


def flagged_cells(passed_in_notebook: set[str], verdicts: dict[str, Verdict]) -> list[str]:
    """The cells to flag: the notebook's own test passed, the trusted verdict lost points, and
    the probe's run of the same public check failed on this code or its data was poisoned
    (``Verdict.suspect``). A hidden check that catches what the public one lets through (an
    honest mistake) is no flag."""
    return sorted(
        c for c in passed_in_notebook if c in verdicts and verdicts[c].lost and verdicts[c].suspect
    )


def flag_text(flags: list[str]) -> str:
    """The grade table's ``flags``: the cells whose notebook test passed where the same public
    check fails on the handed-in code (or the probe's data was poisoned)."""
    if not flags:
        return ""
    return (
        f"the notebook's test of {', '.join(flags)} passed where the same public check fails on "
        "this code: look at this submission"
    )


def _copy_submission(workspace: Workspace, submitted: Path, job: _Job) -> None:
    """``code/exercise_code``: given modules from source, student modules as handed in;
    ``files``: the notebooks and the regular files in ``models/`` (see the module docstring)."""
    spec = workspace.spec
    source = course.source_dir(spec.course_dir, spec.assignment)
    student_modules = set(course.student_modules(spec.assignment, source))
    code = job.code / "exercise_code"
    code.mkdir(parents=True)
    for path in sorted((source / "exercise_code").glob("*.py")):
        relative = path.relative_to(source).as_posix()
        if relative not in student_modules:
            shutil.copyfile(path, code / path.name)
    wanted = [*student_modules, *(f"{n}.ipynb" for n in spec.notebooks)]
    models = submitted / "models"
    if models.is_dir() and not models.is_symlink():
        wanted += [f"models/{p.name}" for p in sorted(models.iterdir())]
    for relative in wanted:
        data = untrusted.read_bytes(submitted, relative, MAX_NOTEBOOK_BYTES)
        if data is None:
            continue
        target = (code.parent if relative in student_modules else job.files) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for path in [job.code, job.files, *job.code.rglob("*"), *job.files.rglob("*")]:
        if path.exists():
            path.chmod(0o755 if path.is_dir() else 0o644)


def _probe_sandbox(workspace: Workspace, job: _Job, out: Path, *read_only: Path) -> Sandbox:
    """The sandbox of one probe (or model run) writing to ``out``."""
    settings = workspace.spec.settings
    return Sandbox(
        timeout_s=settings.probe_timeout_s,
        memory_bytes=settings.probe_memory_bytes,
        uid=job.uid,
        ro_binds=tuple(str(p) for p in (read_only or (job.code, job.files)) if p.exists()),
        hide=workspace.hide,
        max_processes=settings.max_processes,
        disk_paths=(str(out),),
        max_disk_bytes=settings.autograde_disk_bytes,
    )


def _trusted_verdicts(
    workspace: Workspace, job: _Job, submission: str
) -> tuple[dict[str, Verdict], ModelRun]:
    """The verdict of every graded cell but the hidden one, and the model run (exercise_08).

    The sandboxes (one per probe, one for the model) run ``settings.check_lanes`` at a time:
    each waits on its own process, so a job's checks overlap instead of queueing behind each
    other's start and end. Every verdict is decided afterwards in this thread, in the
    notebook's order: a judge seeds torch's global generator, which threads would share.
    """
    spec = workspace.spec
    verdicts: dict[str, Verdict] = {}
    job.files.mkdir(exist_ok=True)
    digest = seed_digest(spec.grader_version, submission)
    model_cell = getattr(workspace.verdicts, "MODEL_CHECK", None)
    graded = [c for c in spec.cells if (c[0], c[1]) != spec.hidden_cell]
    with ThreadPoolExecutor(spec.settings.check_lanes, thread_name_prefix="check") as lanes:
        runs = {}
        for _, cell, _ in graded:
            context = trusted.Context(
                spec.assignment,
                trusted.check_seed(workspace.key, digest, cell),
                spec.settings.data_dir,
            )
            if cell == model_cell:
                runs[cell] = context, lanes.submit(_run_model, workspace, job)
            elif cell in workspace.verdicts.JUDGES:
                runs[cell] = context, lanes.submit(_run_probe, workspace, job, cell, context.seed)
        model = ModelRun()
        for _, cell, points in graded:
            if cell not in runs:
                verdicts[cell] = Verdict.of(
                    False,
                    points,
                    f"The grader has no trusted check for {cell}; ask your instructor.",
                )
                continue
            context, run = runs[cell]
            if cell == model_cell:
                model = run.result()
                verdicts[cell] = _judge_model(workspace, model, cell, context, points)
            else:
                verdicts[cell] = _judge_probe(workspace, cell, run.result(), context, points)
    if spec.hidden_cell is not None and model.logits is None and not (model.rule or model.problem):
        model = _run_model(workspace, job)
    return verdicts, model


def _judge_model(
    workspace: Workspace, model: ModelRun, cell: str, context: trusted.Context, points: float
) -> Verdict:
    timed_out = bool(getattr(model, "timed_out", False))
    if model.logits is None:
        return Verdict.of(False, points, clean_text(model.rule or model.problem, 500), timed_out)
    public_splits = model.logits[len(workspace.hidden_labels) :]
    batched = model.logits[: len(model.singles)]
    judgement = trusted.judge_saved_model(
        workspace.verdicts, cell, public_splits, model.singles, batched, context
    )
    verdict = Verdict.of(judgement.passed, points, clean_text(judgement.message, 500))
    return replace(verdict, suspect=judgement.suspect)


def _run_model(workspace: Workspace, job: _Job) -> ModelRun:
    rules = exercise_code_module(workspace.spec.assignment, "model_rules")
    out = job.output("model")
    return run_model(
        workspace.warm,
        rules,
        job.files / MODEL_RELATIVE_PATH,
        workspace.model_images,
        workspace.model_image_count,
        out,
        replace(
            _probe_sandbox(workspace, job, out, job.files, workspace.model_images.parent),
            timeout_s=workspace.spec.settings.model_timeout_s,
        ),
    )


def _run_probe(
    workspace: Workspace, job: _Job, cell: str, seed: int
) -> tuple[Outcome, Sandbox, Path]:
    """``cell``'s probe in its own sandbox: (what happened, the sandbox, its output folder)."""
    out = job.output(cell)
    sandbox = _probe_sandbox(workspace, job, out)
    args = trusted.probe_args(job.code, job.files, out, cell, seed)
    outcome = workspace.warm.run(
        "probe", args, sandbox, out, job.root / f"{cell}.log", trusted.probe_env(out)
    )
    return outcome, sandbox, out


def _judge_probe(
    workspace: Workspace,
    cell: str,
    run: tuple[Outcome, Sandbox, Path],
    context: trusted.Context,
    points: float,
) -> Verdict:
    """The verdict of ``cell`` on what its probe's sandbox handed back (:func:`_run_probe`)."""
    outcome, sandbox, out = run
    problem = trusted.probe_problem(outcome, cell, sandbox)
    if problem:
        return Verdict.of(False, points, clean_text(problem, 500), outcome.timed_out)
    data = trusted.load_probe_data(out)
    shutil.rmtree(out, ignore_errors=True)
    judgement = trusted.judge_probe(workspace.verdicts, cell, data, context)
    verdict = Verdict.of(judgement.passed, points, clean_text(judgement.message, 500))
    return replace(verdict, suspect=judgement.suspect)


def _autograde(workspace: Workspace, job: _Job, result: dict) -> None:
    """nbgrader's autograde in a throwaway course (feedback only), forked from the warm parent
    with its kernel (:mod:`autograder.sandbox.forked_kernel`); stores ``result["outcome"]``."""
    spec = workspace.spec
    settings = spec.settings
    try:
        throwaway = _build_throwaway(workspace, job)
        log = job.root / "autograde.log"
        outcome = workspace.warm.run(
            "notebook",
            {"argv": ["autograde", spec.assignment, "--student", THROWAWAY_STUDENT]},
            Sandbox(
                timeout_s=settings.autograde_timeout_s,
                memory_bytes=settings.autograde_memory_bytes,
                uid=job.uid,
                rw_binds=(str(job.autograde),),
                ro_binds=(str(workspace.student_data),),
                hide=workspace.hide,
                max_processes=settings.max_processes,
                disk_paths=(str(job.autograde),),
                max_disk_bytes=settings.autograde_disk_bytes,
            ),
            throwaway,
            log,
            scrubbed_env(job.autograde / "home", {"COURSE_DATA_DIR": str(workspace.student_data)}),
        )
        result["outcome"] = replace(outcome, log=log_tail(log, LOG_TAIL_BYTES))
    except Exception as error:  # the feedback notebook is missing then; points are unaffected
        result["error"] = error


def _build_throwaway(workspace: Workspace, job: _Job) -> Path:
    """The private course for nbgrader's autograde of one submission; returns its root.

    It holds the given files of ``source/<assignment>`` (not the notebooks, the student modules
    or the trusted checks), the submission as copied into the job (notebooks, student modules,
    models) under a neutral student id, and a gradebook with this assignment's cells only.
    """
    import os

    spec = workspace.spec
    root = job.autograde / "course"
    source = course.source_dir(spec.course_dir, spec.assignment)
    excluded = set(course.student_modules(spec.assignment, source))

    def ignore(folder: str, names: list[str]) -> list[str]:
        relative = Path(folder).relative_to(source)
        return [
            n
            for n in names
            if n.endswith(".ipynb") or course.is_ignored(n) or (relative / n).as_posix() in excluded
        ]

    shutil.copytree(source, root / "source" / spec.assignment, ignore=ignore)
    submission = root / "submitted" / THROWAWAY_STUDENT / spec.assignment
    shutil.copytree(job.files, submission)
    for name, skipped in workspace.feedback_skips.items():
        notebook = load_notebook(submission, f"{name}.ipynb")
        if notebook is not None:
            text = json.dumps(tag_skipped(notebook, skipped))
            (submission / f"{name}.ipynb").write_text(text, encoding="utf-8")
    for module in excluded:
        if (job.code / module).is_file():
            (submission / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job.code / module, submission / module)
    shutil.copyfile(workspace.template_db, root / "gradebook.db")
    (root / "nbgrader_config.py").write_text(workspace.config_text, encoding="utf-8")
    (job.autograde / "home" / "tmp").mkdir(parents=True)
    if job.uid is not None:
        for path in [job.autograde, *job.autograde.rglob("*")]:
            os.lchown(path, job.uid, job.uid)
    return root


def _keep_feedback(
    workspace: Workspace, target: Path, autograded: Path, verdicts: dict[str, Verdict]
) -> str:
    """The autograded notebooks, cleaned (:mod:`autograder.grading.feedback`), into ``target``;
    returns the sentence for a notebook that got no feedback ("" when all did)."""
    kept = kept_feedback(autograded, workspace.spec.notebooks, verdicts)
    staging = target.parent / f".{target.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, notebook in kept.notebooks.items():
        (staging / f"{name}.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return kept.note
