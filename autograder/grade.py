"""``grade``: nbgrader autograde of each submission in a throwaway course, then the hidden check.

For each collected submission (``course/submitted/<student>/<assignment>/``):

1. A throwaway course is built in a private temporary folder: ``nbgrader_config.py`` (the real
   course's settings), the given files of ``source/<assignment>/`` (no notebooks, no student
   modules: those are graded as submitted via ``Autograde.exclude_overwriting``), a copy of the
   submission and a gradebook holding only this assignment's cells (no other student's data).
2. ``nbgrader autograde`` runs there as a sandboxed subprocess (:mod:`autograder.sandbox`:
   wall-clock and memory limits, scrubbed environment, no network, an unprivileged user id when
   run as root) with ``COURSE_DATA_DIR`` pointing at a read-only copy of the training files and
   the split files only.
3. The trusted grader reads the per-cell scores from the throwaway gradebook, caps each at the
   real gradebook's points for that cell, and writes them into the real ``course/gradebook.db``
   with nbgrader's Gradebook API (:mod:`autograder.gradebook`). The autograded notebooks are
   copied to ``course/autograded/<student>/<assignment>/`` for feedback. Nothing else is
   trusted; the sentence for the student comes from :mod:`autograder.diagnose`.
4. The hidden-accuracy check (:mod:`autograder.hidden_check`) runs the submitted
   ``models/classifier.pt2`` in its own sandboxed process (forked from a warm parent that
   imported torch once per run).
5. One result record per student (:mod:`autograder.results`) with the scores, a status
   (``graded``, ``timeout``, ``error``) and one sentence for the student.

A record also stores ``submission_sha256``, a hash of the submission, the source assignment and
the grader version: a student whose record matches is skipped, so an interrupted run resumes
where it stopped, and re-running gives the same records. Records are written last and
atomically, after the gradebook, so an interrupted run leaves nothing half-done that is trusted.

Entry point: :func:`grade`.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import stat
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import course, hidden_check
from .course import AutograderError
from .diagnose import (
    MAX_NOTEBOOK_BYTES,
    NotebookFindings,
    autograde_problem,
    inspect_notebooks,
    join_sentences,
    tests_message,
)
from .gradebook import (
    gradebook_cells,
    make_template_gradebook,
    read_capped_scores,
    store_scores,
)
from .hidden_check import (
    MODEL_RELATIVE_PATH,
    HiddenResult,
    check_hidden_accuracy,
    load_hidden_images,
)
from .results import check_student_id, read_result, write_result
from .sandbox import (
    MAX_SLOTS,
    Sandbox,
    isolation_warning,
    kill_user_processes,
    reserved_uids,
    run_sandboxed,
    running_as_root,
    scrubbed_env,
)

GRADER_VERSION = "1"
"""Part of every submission hash: bump it when a change of the grader changes results."""

TEMP_PREFIX = "autograder-grade-"
PACKAGE_DIR = Path(__file__).resolve().parent
GiB = 2**30


@dataclass(frozen=True)
class GradeSettings:
    """Limits and places used by :func:`grade`; :meth:`from_env` reads overrides.

    Environment variables (all optional): ``AUTOGRADER_TIMEOUT_S`` (wall clock of one
    autograde), ``AUTOGRADER_CELL_TIMEOUT_S`` (one notebook cell), ``AUTOGRADER_MEMORY_MB``
    (address space of each autograde process), ``AUTOGRADER_DISK_MB`` (what one autograde may
    write to disk), ``AUTOGRADER_HIDDEN_TIMEOUT_S`` and
    ``AUTOGRADER_HIDDEN_MEMORY_MB`` (the hidden check), ``AUTOGRADER_DATA_DIR`` (the data
    folder with the hidden test set; default ``data/`` of the repository).
    """

    autograde_timeout_s: float = 900.0
    cell_timeout_s: int = course.CELL_TIMEOUT_S
    autograde_memory_bytes: int = 8 * GiB
    autograde_disk_bytes: int = 2 * GiB
    hidden_timeout_s: float = 120.0
    hidden_memory_bytes: int = 6 * GiB
    data_dir: Path = field(default_factory=lambda: course.REPO_ROOT / "data")

    @classmethod
    def from_env(cls) -> GradeSettings:
        env = os.environ
        settings = cls()
        numbers = {
            "autograde_timeout_s": ("AUTOGRADER_TIMEOUT_S", float, 1),
            "cell_timeout_s": ("AUTOGRADER_CELL_TIMEOUT_S", int, 1),
            "autograde_memory_bytes": ("AUTOGRADER_MEMORY_MB", int, 2**20),
            "autograde_disk_bytes": ("AUTOGRADER_DISK_MB", int, 2**20),
            "hidden_timeout_s": ("AUTOGRADER_HIDDEN_TIMEOUT_S", float, 1),
            "hidden_memory_bytes": ("AUTOGRADER_HIDDEN_MEMORY_MB", int, 2**20),
        }
        for name, (variable, kind, scale) in numbers.items():
            if env.get(variable):
                settings = replace(settings, **{name: kind(float(env[variable]) * scale)})
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
    """(notebook, grade cell) -> points, from the real gradebook."""
    source_hash: str
    hidden_points: float
    hidden_images: object
    hidden_paths: tuple[str, ...]
    gradebook_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tests_max(self) -> float:
        return float(sum(self.cells.values()))

    @property
    def notebooks(self) -> list[str]:
        return sorted({notebook for notebook, _ in self.cells})


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
        _remove_stale_temp_dirs()
        temp_root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
        temp_root.chmod(0o711)
        try:
            run = _prepare_run(course_dir, assignment, settings, temp_root)
            with reserved_uids(jobs) as uids:
                _grade_all(run, todo, uids)
        finally:
            hidden_check.shutdown()
            shutil.rmtree(temp_root, ignore_errors=True)


def _students_to_grade(course_dir: Path, assignment: str, students: list[str] | None) -> list[str]:
    collected = course.submitted_students(course_dir, assignment)
    if students is None:
        return collected
    missing = [s for s in students if s not in collected]
    for student in missing:
        print(f"{student}: no collected submission of {assignment}; run collect for it first.")
    return [check_student_id(s) for s in students if s in collected]


def _restrict(course_dir: Path, data_dir: Path) -> None:
    """Make the course and the hidden test data unreadable for sandbox users (root runs only)."""
    if not running_as_root():
        return
    course_dir.chmod(0o700)
    hidden = Path(data_dir) / "hidden"
    if hidden.is_dir():
        hidden.chmod(0o700)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        path = Path(data_dir) / "MNIST" / "raw" / name
        if path.is_file():
            path.chmod(0o600)


def _remove_stale_temp_dirs() -> None:
    """Delete throwaway folders of grade runs that were killed (their process is gone)."""
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        pid = path.name[len(TEMP_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare_run(course_dir: Path, assignment: str, settings: GradeSettings, temp_root: Path):
    source = course.source_dir(course_dir, assignment)
    if not source.is_dir():
        raise AutograderError(
            f"{source} is missing: run `python -m autograder release {assignment}` first."
        )
    cells = gradebook_cells(course_dir, assignment)
    template_db = temp_root / "template.db"
    make_template_gradebook(course_dir / "gradebook.db", template_db, assignment)
    hidden_points = float(course.HIDDEN_POINTS.get(assignment, 0.0))
    images = None
    if hidden_points > 0:
        hidden_check.warm_up()
        try:
            images = load_hidden_images(settings.data_dir)
        except FileNotFoundError as error:
            raise AutograderError(str(error)) from error
    hidden = {course_dir, Path(settings.data_dir).resolve()}
    hidden |= {course.exercise_dir(a) for a in course.ASSIGNMENTS}
    # The instructor's repositories (solutions in files and in .git history, data, course/):
    # everything in them but the Python environment and this package is covered.
    for repository in {course.REPO_ROOT.resolve(), PACKAGE_DIR.parent}:
        hidden |= {entry.resolve() for entry in repository.iterdir() if not entry.is_symlink()}
    return _Run(
        course_dir=course_dir,
        assignment=assignment,
        settings=settings,
        temp_root=temp_root,
        student_data=_student_data_copy(settings.data_dir, temp_root / "data"),
        template_db=template_db,
        config_text=course.config_text(course_dir)
        + f"c.Execute.timeout = {int(settings.cell_timeout_s)}\n",
        cells=cells,
        source_hash=_tree_hash(source),
        hidden_points=hidden_points,
        hidden_images=images,
        hidden_paths=_hideable(hidden, temp_root),
    )


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
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _submission_hash(run: _Run, student: str) -> str:
    submitted = course.submitted_dir(run.course_dir, run.assignment, student)
    text = f"{GRADER_VERSION}:{run.source_hash}:{_tree_hash(submitted)}"
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
            record = _grade_one(run, student, slot)
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
                f" in {time.monotonic() - began:.1f} s. {record['message']}".rstrip(),
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
    message = (
        f"Grading failed inside the autograder ({type(error).__name__}: {error}); "
        "ask your instructor to grade your submission again."
    )[:500]
    return _record(run, "error", None, [], None, message)


def _grade_one(run: _Run, student: str, uid: int | None) -> dict:
    work = run.temp_root / student
    try:
        work.mkdir()
        work.chmod(0o700)
        throwaway = _build_throwaway(run, student, work, uid)
        outcome = run_sandboxed(
            [sys.executable, "-m", "nbgrader", "autograde", run.assignment, "--student", student],
            Sandbox(
                timeout_s=run.settings.autograde_timeout_s,
                memory_bytes=run.settings.autograde_memory_bytes,
                uid=uid,
                hidden_paths=run.hidden_paths,
                keep_paths=(str(work), str(run.student_data)),
                disk_paths=(str(work),),
                max_disk_bytes=run.settings.autograde_disk_bytes,
            ),
            throwaway,
            scrubbed_env(work / "home", {"COURSE_DATA_DIR": str(run.student_data)}),
            run.temp_root / f"{student}.autograde.log",
        )
        scores = read_capped_scores(_inside(throwaway / "gradebook.db", work), run.cells)
        autograded = _inside(throwaway / "autograded" / student / run.assignment, work)
        submitted = course.submitted_dir(run.course_dir, run.assignment, student)
        grade_ids = {cell for _, cell in run.cells}
        findings = inspect_notebooks(submitted, autograded, run.notebooks, grade_ids)
        with run.gradebook_lock:
            store_scores(run.course_dir, run.assignment, student, scores)
        _copy_autograded(run, student, autograded)
        problem = autograde_problem(
            outcome,
            submitted,
            run.notebooks,
            run.settings.autograde_timeout_s,
            run.settings.cell_timeout_s,
        )
        hidden = _hidden(run, student, uid)
    finally:
        if uid is not None:
            kill_user_processes(uid)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run.temp_root / f"{student}.hidden", ignore_errors=True)
    details = [
        {
            "item": f"{notebook}: {cell}",
            "score": scores[(notebook, cell)],
            "max": points,
            "reason": _reason(findings, cell) if scores[(notebook, cell)] < points else "",
        }
        for (notebook, cell), points in sorted(run.cells.items())
    ]
    status = problem[0] if problem else "graded"
    message = problem[1] if problem else tests_message(details, findings)
    if hidden is not None and hidden.score < hidden.max_score:
        message = join_sentences(hidden.message, message)
    return _record(run, status, scores, details, hidden, message)


def _reason(findings: NotebookFindings, cell: str) -> str:
    if cell in findings.deleted:
        return "this graded cell was deleted from the notebook"
    if cell in findings.failures:
        return findings.failures[cell]
    return findings.first_error[0] if findings.first_error else "no error shown"


def _record(
    run: _Run,
    status: str,
    scores: dict | None,
    details: list[dict],
    hidden: HiddenResult | None,
    message: str,
) -> dict:
    tests_score = round(float(sum((scores or {}).values())), 4)
    hidden_score = hidden.score if hidden is not None else 0.0
    if hidden is not None:
        details = details + [
            {
                "item": "hidden test accuracy",
                "score": hidden.score,
                "max": hidden.max_score,
                "reason": hidden.message,
            }
        ]
    return {
        "status": status,
        "tests_score": tests_score,
        "tests_max": run.tests_max,
        "hidden_accuracy": hidden.accuracy if hidden is not None else None,
        "hidden_score": hidden_score,
        "hidden_max": run.hidden_points,
        "total": round(tests_score + hidden_score, 4),
        "total_max": run.tests_max + run.hidden_points,
        "message": message,
        "details": details,
    }


def _build_throwaway(run: _Run, student: str, work: Path, uid: int | None) -> Path:
    """The private course copy for one submission; returns its root (owned by ``uid``)."""
    root = work / "course"
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
    submitted = course.submitted_dir(run.course_dir, run.assignment, student)
    shutil.copytree(
        submitted,
        root / "submitted" / student / run.assignment,
        symlinks=True,
        ignore_dangling_symlinks=True,
    )
    shutil.copyfile(run.template_db, root / "gradebook.db")
    (root / "nbgrader_config.py").write_text(run.config_text, encoding="utf-8")
    for folder in (work / "home", work / "home" / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        for path in [work, *work.rglob("*")]:
            if not path.is_symlink():
                os.chown(path, uid, uid)
    return root


def _copy_autograded(run: _Run, student: str, autograded: Path) -> None:
    """Copy the autograded notebooks (for feedback) into the real course, replacing old ones."""
    target = course.autograded_dir(run.course_dir, run.assignment, student)
    staging = target.parent / f".{run.assignment}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for notebook in run.notebooks:
        path = autograded / f"{notebook}.ipynb"
        mode = path.lstat().st_mode if path.exists() or path.is_symlink() else 0
        if stat.S_ISREG(mode) and path.stat().st_size <= MAX_NOTEBOOK_BYTES:
            shutil.copyfile(path, staging / path.name)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _inside(path: Path, root: Path) -> Path:
    """``path`` if it resolves to a place inside ``root``, else a path that does not exist.

    The sandbox owns ``root``, so any part of ``path`` may be a symbolic link it planted; the
    grader (root) must not follow one out of ``root``.
    """
    resolved = path.resolve()
    if resolved == path.absolute() and root.resolve() in resolved.parents:
        return path
    return root / ".refused-link"


def _hidden(run: _Run, student: str, uid: int | None) -> HiddenResult | None:
    if run.hidden_points <= 0:
        return None
    model = course.submitted_dir(run.course_dir, run.assignment, student) / MODEL_RELATIVE_PATH
    rules = course.source_dir(run.course_dir, run.assignment) / "exercise_code" / "model_rules.py"
    if uid is not None:
        kill_user_processes(uid)
    return check_hidden_accuracy(
        model,
        rules,
        run.hidden_images,
        run.settings.data_dir,
        run.temp_root / f"{student}.hidden",
        Sandbox(
            timeout_s=run.settings.hidden_timeout_s,
            memory_bytes=run.settings.hidden_memory_bytes,
            uid=uid,
            hidden_paths=run.hidden_paths,
        ),
        run.hidden_points,
        course.HIDDEN_PASS_ACCURACY,
    )
