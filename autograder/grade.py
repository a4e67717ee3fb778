"""``grade``: every point of each submission decided by trusted checks, from data.

For each collected submission (``course/submitted/<student>/<assignment>/``), in a job folder
named by the grader (``job-<n>``, never after a student id):

1. The submission is copied as data into ``code/exercise_code/`` (the given modules from the
   source, then the student modules as handed in: nothing else of the student's, so no package
   can shadow a given module) and ``files/`` (the notebooks and the regular files of
   ``models/``).
2. Each in its own sandbox (:mod:`autograder.sandbox`), under the job's sandbox user id:
   - one probe per graded cell, forked from the warm parent; its verdict is decided here
     (:mod:`autograder.trusted`, the assignment's ``grading/`` folder);
   - exercise_08: the handed-in model, checked here by the model validator and run on the
     hidden and the public images (:mod:`autograder.hidden_check`); accuracies computed here;
   - at the same time, nbgrader's autograde of the notebooks in a throwaway course, for the
     executed notebook in the feedback only: its gradebook and results are never read for
     points. Where its test cells passed and the trusted verdict failed, the row gets a flag.
3. The trusted scores (the hidden-test cell included) go into the real gradebook with
   nbgrader's API, the autograded notebook (hidden tests replaced by the verdicts, student markup
   neutralized: :mod:`autograder.feedback`) into ``course/autograded/`` for the feedback, and one
   result record per student (:mod:`autograder.results`).

Nothing a sandbox wrote is followed as a path: it is read with :mod:`autograder.sandbox.untrusted`
and deleted with the symlink-safe ``shutil.rmtree``. Before a sandbox user id runs the next job,
every process of it is killed and checked gone.

A record stores ``submission_sha256`` (a hash of the submission, the source assignment, the
course key's fingerprint and the grader version): a student whose record matches is skipped, so
an interrupted run resumes and re-running gives the same records.

Entry point: :func:`grade`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import course, trusted
from .course import AutograderError
from .diagnose import autograde_problem, notebook_results
from .exercise_modules import exercise_code_module
from .feedback import feedback_notebook
from .files import sha256_of
from .gradebook import gradebook_cells, make_template_gradebook, store_scores
from .hidden_check import MODEL_RELATIVE_PATH, ModelRun, hidden_result, run_model
from .results import clean_text, is_student_id, read_result, write_result
from .sandbox import (
    MAX_SLOTS,
    Sandbox,
    SandboxError,
    WarmParent,
    clear_user,
    isolation_warning,
    reserved_uids,
    run_sandboxed,
    scrubbed_env,
    support,
    untrusted,
)
from .sandbox.cgroups import remove_stale

GRADER_VERSION = "2"
"""Part of every submission hash: bump it when a change of the grader changes results."""

TEMP_PREFIX = "autograder-grade-"
PACKAGE_DIR = Path(__file__).resolve().parent
THROWAWAY_STUDENT = "student"
"""The student id inside a throwaway course (never the real id)."""
NBGRADER = (
    "import sys; sys.modules['rfc3987_syntax'] = None; "
    "from nbgrader.apps.nbgraderapp import main; sys.exit(main())"
)
"""``python -c NBGRADER ...`` is ``python -m nbgrader ...`` without the IRI grammar that
jsonschema builds when nbformat imports it (about 2 s of each autograde; nbgrader never checks
an IRI: jsonschema skips that format when the module cannot be imported)."""
MAX_NOTEBOOK_BYTES = 50 * 2**20
MiB = 2**20


@dataclass(frozen=True)
class GradeSettings:
    """Limits and places used by :func:`grade`; :meth:`from_env` reads overrides.

    Environment variables (all optional): ``AUTOGRADER_TIMEOUT_S`` (wall clock of one
    autograde), ``AUTOGRADER_CELL_TIMEOUT_S`` (one notebook cell), ``AUTOGRADER_MEMORY_MB``
    (memory of all processes of one autograde together), ``AUTOGRADER_DISK_MB`` (what one
    autograde may write), ``AUTOGRADER_PROCESSES`` (processes and threads of one job),
    ``AUTOGRADER_PROBE_TIMEOUT_S`` and ``AUTOGRADER_PROBE_MEMORY_MB`` (one trusted check or
    model run), ``AUTOGRADER_MODEL_TIMEOUT_S`` (the handed-in model on the hidden and public
    images), ``AUTOGRADER_DATA_DIR`` (the data folder with the hidden test set and the course
    key; default ``data/`` of the repository).
    """

    autograde_timeout_s: float = 900.0
    cell_timeout_s: int = course.CELL_TIMEOUT_S
    autograde_memory_bytes: int = 4096 * MiB
    autograde_disk_bytes: int = 2048 * MiB
    max_processes: int = 256
    probe_timeout_s: float = 120.0
    probe_memory_bytes: int = 2048 * MiB
    model_timeout_s: float = 120.0
    data_dir: Path = field(default_factory=lambda: course.REPO_ROOT / "data")

    @classmethod
    def from_env(cls) -> GradeSettings:
        env = os.environ
        settings = cls()
        numbers = {
            "autograde_timeout_s": ("AUTOGRADER_TIMEOUT_S", float, 1),
            "cell_timeout_s": ("AUTOGRADER_CELL_TIMEOUT_S", int, 1),
            "autograde_memory_bytes": ("AUTOGRADER_MEMORY_MB", int, MiB),
            "autograde_disk_bytes": ("AUTOGRADER_DISK_MB", int, MiB),
            "max_processes": ("AUTOGRADER_PROCESSES", int, 1),
            "probe_timeout_s": ("AUTOGRADER_PROBE_TIMEOUT_S", float, 1),
            "probe_memory_bytes": ("AUTOGRADER_PROBE_MEMORY_MB", int, MiB),
            "model_timeout_s": ("AUTOGRADER_MODEL_TIMEOUT_S", float, 1),
        }
        for name, (variable, kind, scale) in numbers.items():
            if env.get(variable):
                try:
                    value = kind(float(env[variable]) * scale)
                except ValueError:
                    raise AutograderError(
                        f"{variable} must be a number, not {env[variable]!r}."
                    ) from None
                settings = replace(settings, **{name: value})
        if env.get("AUTOGRADER_DATA_DIR"):
            settings = replace(settings, data_dir=Path(env["AUTOGRADER_DATA_DIR"]))
        return settings


@dataclass
class _Run:
    """What every submission of one ``grade`` call shares."""

    course_dir: Path
    assignment: str
    settings: GradeSettings
    temp_root: Path
    student_data: Path
    template_db: Path
    config_text: str
    cells: dict[tuple[str, str], float]
    """(notebook, graded cell) -> points, from the real gradebook, in notebook order."""
    source_hash: str
    key: bytes
    hide: tuple[str, ...]
    warm: WarmParent
    verdicts: object
    model_images: Path | None = None
    hidden_labels: np.ndarray | None = None
    model_image_count: int = 0
    gradebook_lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: itertools.count = field(default_factory=itertools.count)

    @property
    def hidden_cell(self) -> tuple[str, str] | None:
        cell = course.HIDDEN_CELL.get(self.assignment)
        return next((key for key in self.cells if key[1] == cell), None)

    @property
    def notebooks(self) -> list[str]:
        return list(dict.fromkeys(notebook for notebook, _ in self.cells))


def grade(
    course_dir: Path,
    assignment: str,
    students: list[str] | None = None,
    jobs: int = 1,
    settings: GradeSettings | None = None,
) -> None:
    """Grade the collected submissions of ``assignment`` (all, or only ``students``).

    ``jobs`` submissions are graded in parallel. ``settings`` (limits, data folder) defaults to
    :meth:`GradeSettings.from_env`. Prints one line per student and a summary.
    Raises ``AutograderError`` when the course is not ready (no release, no hidden test data).
    """
    settings = settings or GradeSettings.from_env()
    course_dir = Path(course_dir).resolve()
    course.exercise_dir(assignment)
    if not 1 <= jobs <= MAX_SLOTS:
        raise AutograderError(f"--jobs must be between 1 and {MAX_SLOTS}; got {jobs}.")
    warning = isolation_warning()
    if warning:
        print(warning)
    with course.course_lock(course_dir, "run grade"):
        todo = _students_to_grade(course_dir, assignment, students)
        if not todo:
            print(f"No collected submissions of {assignment} to grade; run collect first.")
            return
        _restrict(course_dir, settings.data_dir)
        _remove_stale_runs()
        temp_root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
        temp_root.chmod(0o711)
        warm = WarmParent(_preload(assignment))
        try:
            warm.start()
            run = _prepare_run(course_dir, assignment, settings, temp_root, warm)
            with reserved_uids(jobs) as uids:
                _grade_all(run, todo, uids)
        finally:
            warm.close()
            shutil.rmtree(temp_root, ignore_errors=True)


def _preload(assignment: str) -> dict:
    """What the warm parent imports before it forks: the model rules, the probes, and the
    libraries the student's modules import."""
    modules = {"probes": str(trusted.probes_path(assignment))}
    rules = course.exercise_dir(assignment) / "exercise_code" / "model_rules.py"
    if assignment in course.HIDDEN_CELL:
        modules["model_rules"] = str(rules)
    return {"modules": modules, "imports": ["tqdm.auto", "torch.nn.functional"]}


def _students_to_grade(course_dir: Path, assignment: str, students: list[str] | None) -> list[str]:
    collected = course.submitted_students(course_dir, assignment)
    if students is None:
        return collected
    for student in students:
        if not is_student_id(student):
            raise AutograderError(
                f"{clean_text(student)!r} is not a usable student id: give the id of a collected "
                "submission (letters, digits, '.', '_' and '-')."
            )
        if student not in collected:
            print(f"{student}: no collected submission of {assignment}; run collect for it first.")
    return [s for s in students if s in collected]


def _restrict(course_dir: Path, data_dir: Path) -> None:
    """Make the course and the hidden test data unreadable for sandbox users (root runs only)."""
    if os.geteuid() != 0:
        return
    course_dir.chmod(0o700)
    for path in (Path(data_dir) / "hidden", Path(data_dir) / "MNIST" / "raw"):
        for item in path.glob("t10k-*") if path.name == "raw" else [path]:
            if item.exists() and not item.is_symlink():
                item.chmod(0o700 if item.is_dir() else 0o600)


def _remove_stale_runs() -> None:
    """Delete temporary folders and cgroups of grade runs that were killed (their process is
    gone)."""
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        pid = path.name[len(TEMP_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
    if support().cgroups.used():
        remove_stale(support().cgroups, _alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare_run(
    course_dir: Path, assignment: str, settings: GradeSettings, temp_root: Path, warm: WarmParent
) -> _Run:
    source = course.source_dir(course_dir, assignment)
    if not source.is_dir():
        raise AutograderError(
            f"{source} is missing: run `python -m autograder release {assignment}` first."
        )
    data = exercise_code_module("exercise_08", "data")
    try:
        data.load_split("labeled_test", settings.data_dir)
        key = _course_key(settings.data_dir)
    except FileNotFoundError as error:
        raise AutograderError(str(error)) from error
    template_db = temp_root / "template.db"
    make_template_gradebook(course_dir / "gradebook.db", template_db, assignment)
    hidden = {course_dir, Path(settings.data_dir).resolve()}
    hidden |= {course.exercise_dir(a) for a in course.ASSIGNMENTS}
    # The instructor's repositories (solutions in files and in .git history, data, course/):
    # everything in them but the Python environment and this package is covered.
    for repository in {course.REPO_ROOT.resolve(), PACKAGE_DIR.parent}:
        hidden |= {entry.resolve() for entry in repository.iterdir() if not entry.is_symlink()}
    run = _Run(
        course_dir=course_dir,
        assignment=assignment,
        settings=settings,
        temp_root=temp_root,
        student_data=_student_data_copy(settings.data_dir, temp_root / "data"),
        template_db=template_db,
        config_text=course.config_text(course_dir)
        + f"c.Execute.timeout = {int(settings.cell_timeout_s)}\n",
        cells=_cells_in_order(course_dir, assignment),
        source_hash=_tree_hash(source) + _tree_hash(trusted.grading_dir(assignment)),
        key=key,
        hide=_hideable(hidden, temp_root),
        warm=warm,
        verdicts=trusted.verdicts(assignment),
    )
    if assignment in course.HIDDEN_CELL:
        _prepare_model_images(run)
    return run


def _course_key(data_dir: Path) -> bytes:
    from .data import course_key

    return course_key(data_dir)


def _prepare_model_images(run: _Run) -> None:
    """One ``.npy`` of the images every handed-in model is run on: hidden, then public."""
    from .data import load_hidden_set

    try:
        images, labels = load_hidden_set(run.settings.data_dir)
    except FileNotFoundError as error:
        raise AutograderError(str(error)) from error
    hidden = (images.astype(np.float32) / 255.0)[:, None, :, :]
    context = trusted.Context(run.assignment, 0, run.settings.data_dir)
    public = run.verdicts.model_images(context)
    everything = np.ascontiguousarray(np.concatenate([hidden, public]), dtype=np.float32)
    folder = run.temp_root / "model-images"
    folder.mkdir(mode=0o755)
    run.model_images = folder / "images.npy"
    np.save(run.model_images, everything, allow_pickle=False)
    run.model_images.chmod(0o444)
    run.hidden_labels = labels.astype(np.int64)
    run.model_image_count = len(everything)


def _cells_in_order(course_dir: Path, assignment: str) -> dict[tuple[str, str], float]:
    """The graded cells with their points (real gradebook), in the notebooks' order."""
    points = gradebook_cells(course_dir, assignment)
    order = []
    for path in sorted(course.source_dir(course_dir, assignment).glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if (path.stem, grade_id) in points:
                order.append((path.stem, grade_id))
    order += [key for key in sorted(points) if key not in order]
    return {key: points[key] for key in order}


def _hideable(paths: set[Path], temp_root: Path) -> tuple[str, ...]:
    """The paths that can be covered in the sandbox: not holding its work folder or Python."""
    keep = [temp_root.resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    keep.append(PACKAGE_DIR)
    usable = []
    for path in sorted(paths):
        if path.exists() and not any(k == path or path in k.parents for k in keep):
            usable.append(str(path))
    return tuple(usable)


def _student_data_copy(data_dir: Path, target: Path) -> Path:
    """A read-only copy of the training files and the split files (never the hidden test)."""
    data_dir = Path(data_dir)
    raw = target / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        if (data_dir / "MNIST" / "raw" / name).is_file():
            shutil.copyfile(data_dir / "MNIST" / "raw" / name, raw / name)
    if (data_dir / "splits").is_dir():
        shutil.copytree(data_dir / "splits", target / "splits")
    for path in sorted(target.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    target.chmod(0o555)
    return target


def _tree_hash(folder: Path) -> str:
    """sha256 over the names and contents of the files below ``folder`` (caches left out)."""
    digest = hashlib.sha256()
    files = [
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts
    ]
    for path in sorted(files):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_of(path)))
    return digest.hexdigest()


def _submission_hash(run: _Run, student: str) -> str:
    submitted = course.submitted_dir(run.course_dir, run.assignment, student)
    key_print = hashlib.sha256(run.key).hexdigest()[:16]
    text = f"{GRADER_VERSION}:{run.source_hash}:{key_print}:{_tree_hash(submitted)}"
    return hashlib.sha256(text.encode()).hexdigest()


def _grade_all(run: _Run, students: list[str], uids: list[int | None]) -> None:
    """Grade ``students``, as many at a time as there are sandbox ``uids``."""
    slots: queue.Queue[int | None] = queue.Queue()
    for uid in uids:
        slots.put(uid)
    start = time.monotonic()
    counts = {"graded": 0, "skipped": 0}
    print_lock = threading.Lock()

    def work(student: str) -> None:
        digest = _submission_hash(run, student)
        try:
            previous = read_result(run.course_dir, run.assignment, student)
        except ValueError:
            previous = None
        if previous and previous.get("submission_sha256") == digest:
            with print_lock:
                counts["skipped"] += 1
                print(f"{student}: already graded ({previous.get('status')}), skipped.", flush=True)
            return
        slot = slots.get()
        began = time.monotonic()
        try:
            record = _grade_one(run, student, slot, digest)
            # A failure of the grader itself is not stored as final: the next run retries it.
            record["submission_sha256"] = digest
        except Exception as error:
            record = _internal_error_record(run, error)
        finally:
            slots.put(slot)
        write_result(run.course_dir, run.assignment, student, record)
        with print_lock:
            counts["graded"] += 1
            print(
                f"{student}: {record['status']} {record['total']:g}/{record['total_max']:g}"
                f" in {time.monotonic() - began:.1f} s. {clean_text(record['message'])}".rstrip(),
                flush=True,
            )

    with ThreadPoolExecutor(max_workers=len(uids)) as pool:
        for future in [pool.submit(work, s) for s in students]:
            future.result()
    print(
        f"Graded {counts['graded']} and skipped {counts['skipped']} already graded submissions "
        f"of {run.assignment} in {time.monotonic() - start:.1f} s "
        f"(results in {run.course_dir / 'results' / run.assignment})."
    )


def _internal_error_record(run: _Run, error: Exception) -> dict:
    """A record for a failure of the grader itself (not the student's fault)."""
    message = clean_text(
        f"Grading failed inside the autograder ({type(error).__name__}: {error}); "
        "ask your instructor to grade your submission again.",
        500,
    )
    details = [
        {"item": f"{notebook}: {cell}", "score": 0.0, "max": points, "reason": message}
        for (notebook, cell), points in run.cells.items()
    ]
    return _record(run, "error", details, None, message, [])


# ----------------------------------------------------------------------------- one submission


@dataclass
class _Job:
    """The folders of one submission's grading (all below ``run.temp_root/job-<n>``)."""

    root: Path
    uid: int | None

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def autograde(self) -> Path:
        return self.root / "autograde"

    def output(self, name: str) -> Path:
        return trusted.make_probe_folder(self.root / "out", name, self.uid)


def _grade_one(run: _Run, student: str, uid: int | None, digest: str) -> dict:
    if uid is not None:
        clear_user(uid)
    job = _Job(run.temp_root / f"job-{next(run.jobs)}", uid)
    job.root.mkdir(mode=0o711)
    (job.root / "out").mkdir(mode=0o711)
    submitted = course.submitted_dir(run.course_dir, run.assignment, student)
    try:
        _copy_submission(run, submitted, job)
        autograde: dict = {}
        notebook_thread = threading.Thread(target=_autograde, args=(run, job, autograde))
        notebook_thread.start()
        try:
            verdicts, model = _trusted_verdicts(run, job, digest)
        finally:
            notebook_thread.join()
        if isinstance(autograde.get("error"), SandboxError):
            raise autograde["error"]
        outcome = autograde.get("outcome")
        autograded = job.autograde / "course" / "autograded" / THROWAWAY_STUDENT / run.assignment
        passed_in_notebook = notebook_results(autograded, run.notebooks, set(verdicts))
        _keep_feedback(run, student, autograded, verdicts)
    finally:
        if uid is not None:
            clear_user(uid)
        shutil.rmtree(job.root, ignore_errors=True)
    hidden = None
    if run.hidden_cell is not None:
        labels = run.hidden_labels
        hidden = hidden_result(
            model, labels, run.cells[run.hidden_cell], course.HIDDEN_PASS_ACCURACY
        )
        verdicts[run.hidden_cell[1]] = (hidden.score, hidden.max_score, hidden.message)
    with run.gradebook_lock:
        store_scores(run.course_dir, run.assignment, student, _scores(run, verdicts))
    details = [
        {
            "item": f"{notebook}: {cell}",
            "score": verdicts[cell][0],
            "max": points,
            "reason": verdicts[cell][2],
        }
        for (notebook, cell), points in run.cells.items()
    ]
    flags = sorted(
        c for c in passed_in_notebook if c in verdicts and verdicts[c][0] < verdicts[c][1]
    )
    problem = (
        autograde_problem(outcome, submitted, run.notebooks, run.settings) if outcome else None
    )
    status = "graded"
    if problem and problem[0] != "graded":
        status = problem[0]
    if any("took longer than" in d["reason"] for d in details):
        status = "timeout"
    message = _message(details, problem[1] if problem else "")
    return _record(run, status, details, hidden, message, flags)


def _copy_submission(run: _Run, submitted: Path, job: _Job) -> None:
    """``code/exercise_code``: given modules from source, student modules as handed in;
    ``files``: the notebooks and the regular files in ``models/`` (see the module docstring)."""
    source = course.source_dir(run.course_dir, run.assignment)
    student_modules = set(course.student_modules(run.assignment, source))
    code = job.code / "exercise_code"
    code.mkdir(parents=True)
    for path in sorted((source / "exercise_code").glob("*.py")):
        relative = path.relative_to(source).as_posix()
        if relative not in student_modules:
            shutil.copyfile(path, code / path.name)
    wanted = [*student_modules, *(f"{n}.ipynb" for n in run.notebooks)]
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


def _probe_sandbox(run: _Run, job: _Job, out: Path, *read_only: Path) -> Sandbox:
    """The sandbox of one probe (or model run) writing to ``out``."""
    return Sandbox(
        timeout_s=run.settings.probe_timeout_s,
        memory_bytes=run.settings.probe_memory_bytes,
        uid=job.uid,
        ro_binds=tuple(str(p) for p in (read_only or (job.code, job.files)) if p.exists()),
        hide=run.hide,
        max_processes=run.settings.max_processes,
        disk_paths=(str(out),),
        max_disk_bytes=run.settings.autograde_disk_bytes,
    )


def _trusted_verdicts(run: _Run, job: _Job, digest: str) -> tuple[dict, ModelRun]:
    """``{grade_id: (score, max_score, message)}`` of every graded cell but the hidden one, and
    the model run (exercise_08)."""
    verdicts: dict[str, tuple[float, float, str]] = {}
    job.files.mkdir(exist_ok=True)
    model = ModelRun()
    for (_, cell), points in run.cells.items():
        if (_, cell) == run.hidden_cell:
            continue
        context = trusted.Context(
            run.assignment, trusted.check_seed(run.key, digest, cell), run.settings.data_dir
        )
        if cell == getattr(run.verdicts, "MODEL_CHECK", None):
            model = _run_model(run, job)
            if model.logits is None:
                passed, message = False, model.rule or model.problem
            else:
                public = model.logits[len(run.hidden_labels) :]
                batched = model.logits[: len(model.singles)]
                passed, message = run.verdicts.judge_saved_classifier(
                    public, model.singles, batched, context
                )
        elif cell in run.verdicts.JUDGES:
            passed, message = _probe_and_judge(run, job, cell, context)
        else:
            passed, message = (
                False,
                f"The grader has no trusted check for {cell}; ask your instructor.",
            )
        verdicts[cell] = (
            points if passed else 0.0,
            points,
            "" if passed else clean_text(message, 500),
        )
    if run.hidden_cell is not None and model.logits is None and not (model.rule or model.problem):
        model = _run_model(run, job)
    return verdicts, model


def _run_model(run: _Run, job: _Job) -> ModelRun:
    rules = exercise_code_module(run.assignment, "model_rules")
    out = job.output("model")
    return run_model(
        run.warm,
        rules,
        job.files / MODEL_RELATIVE_PATH,
        run.model_images,
        run.model_image_count,
        out,
        replace(
            _probe_sandbox(run, job, out, job.files, run.model_images.parent),
            timeout_s=run.settings.model_timeout_s,
        ),
    )


def _probe_and_judge(run: _Run, job: _Job, cell: str, context: trusted.Context) -> tuple[bool, str]:
    out = job.output(cell)
    sandbox = _probe_sandbox(run, job, out)
    args = trusted.probe_args(job.code, job.files, out, cell, context.seed)
    outcome = run.warm.run(
        "probe", args, sandbox, out, job.root / f"{cell}.log", trusted.probe_env(out)
    )
    problem = trusted.probe_problem(outcome, cell, sandbox)
    if problem:
        return False, problem
    data = trusted.read_probe_data(out)
    shutil.rmtree(out, ignore_errors=True)
    if data is None:
        return False, f"The check of {cell} got no usable data from your code, so it got no points."
    if trusted.probe_error(data, cell):
        return False, trusted.probe_error(data, cell)
    try:
        return run.verdicts.judge(cell, data, context)
    except Exception as error:
        return False, (
            f"The check of {cell} could not use what your code returned ({type(error).__name__}); "
            "run the notebook's public check of that cell."
        )


def _autograde(run: _Run, job: _Job, result: dict) -> None:
    """nbgrader autograde in a throwaway course (feedback only); stores ``result["outcome"]``."""
    try:
        throwaway = _build_throwaway(run, job)
        result["outcome"] = run_sandboxed(
            [
                sys.executable,
                "-c",
                NBGRADER,
                "autograde",
                run.assignment,
                "--student",
                THROWAWAY_STUDENT,
            ],
            Sandbox(
                timeout_s=run.settings.autograde_timeout_s,
                memory_bytes=run.settings.autograde_memory_bytes,
                uid=job.uid,
                rw_binds=(str(job.autograde),),
                ro_binds=(str(run.student_data),),
                hide=run.hide,
                max_processes=run.settings.max_processes,
                disk_paths=(str(job.autograde),),
                max_disk_bytes=run.settings.autograde_disk_bytes,
            ),
            throwaway,
            scrubbed_env(job.autograde / "home", {"COURSE_DATA_DIR": str(run.student_data)}),
            job.root / "autograde.log",
        )
    except Exception as error:  # the feedback notebook is missing then; points are unaffected
        result["error"] = error


def _build_throwaway(run: _Run, job: _Job) -> Path:
    """The private course for nbgrader's autograde of one submission; returns its root.

    It holds the given files of ``source/<assignment>`` (not the notebooks, the student modules
    or the trusted checks), the submission as copied into the job (notebooks, student modules,
    models) under a neutral student id, and a gradebook with this assignment's cells only.
    """
    root = job.autograde / "course"
    source = course.source_dir(run.course_dir, run.assignment)
    excluded = set(course.student_modules(run.assignment, source))

    def ignore(folder: str, names: list[str]) -> list[str]:
        relative = Path(folder).relative_to(source)
        return [
            n
            for n in names
            if n.endswith(".ipynb") or course.is_ignored(n) or (relative / n).as_posix() in excluded
        ]

    shutil.copytree(source, root / "source" / run.assignment, ignore=ignore)
    submission = root / "submitted" / THROWAWAY_STUDENT / run.assignment
    shutil.copytree(job.files, submission)
    for module in excluded:
        if (job.code / module).is_file():
            (submission / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job.code / module, submission / module)
    shutil.copyfile(run.template_db, root / "gradebook.db")
    (root / "nbgrader_config.py").write_text(run.config_text, encoding="utf-8")
    (job.autograde / "home" / "tmp").mkdir(parents=True)
    if job.uid is not None:
        for path in [job.autograde, *job.autograde.rglob("*")]:
            os.lchown(path, job.uid, job.uid)
    return root


def _keep_feedback(run: _Run, student: str, autograded: Path, verdicts: dict) -> None:
    """The autograded notebooks, cleaned (:mod:`autograder.feedback`), into the real course."""
    target = course.autograded_dir(run.course_dir, run.assignment, student)
    staging = target.parent / f".{run.assignment}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for notebook in run.notebooks:
        data = untrusted.read_json(autograded, f"{notebook}.ipynb", MAX_NOTEBOOK_BYTES)
        if data is not None and isinstance(data.get("cells"), list):
            cleaned = feedback_notebook(data, verdicts)
            (staging / f"{notebook}.ipynb").write_text(json.dumps(cleaned), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _scores(run: _Run, verdicts: dict) -> dict[tuple[str, str], float]:
    return {key: verdicts[key[1]][0] for key in run.cells if key[1] in verdicts}


def _message(details: list[dict], notebook_problem: str) -> str:
    """One sentence: the first part that lost points, in the notebook's order."""
    lost = [d for d in details if d["score"] < d["max"]]
    if not lost:
        return notebook_problem
    first = lost[0]["reason"].rstrip(".")
    more = len(lost) - 1
    if more:
        first += (
            f" ({more} more graded part{'s' if more > 1 else ''} lost points: see the feedback)"
        )
    return clean_text(first + ".", 1000)


def _record(
    run: _Run,
    status: str,
    details: list[dict],
    hidden,
    message: str,
    flags: list[str],
) -> dict:
    hidden_key = run.hidden_cell
    tests = [
        d for d in details if hidden_key is None or d["item"] != f"{hidden_key[0]}: {hidden_key[1]}"
    ]
    tests_score = round(float(sum(d["score"] for d in tests)), 4)
    tests_max = round(float(sum(d["max"] for d in tests)), 4)
    hidden_max = float(run.cells[hidden_key]) if hidden_key else 0.0
    hidden_score = hidden.score if hidden is not None else 0.0
    flag_text = (
        f"notebook tests passed that the trusted checks failed ({', '.join(flags)}): look at this "
        "submission"
        if flags
        else ""
    )
    return {
        "status": status,
        "tests_score": tests_score,
        "tests_max": tests_max,
        "hidden_accuracy": hidden.accuracy if hidden is not None else None,
        "hidden_score": hidden_score,
        "hidden_max": hidden_max,
        "total": round(tests_score + hidden_score, 4),
        "total_max": tests_max + hidden_max,
        "message": message,
        "flags": flag_text,
        "details": details,
    }
