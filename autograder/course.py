"""The nbgrader course directory: its layout, its ``nbgrader_config.py`` and its source copies.

Layout of ``course/`` (the default ``--course-dir``; ``release`` makes it, and it then holds
the collected submissions, the gradebook and the results: never delete it, back it up)::

    nbgrader_config.py                   written by :func:`setup_course` (do not edit by hand)
    gradebook.db                         nbgrader's gradebook
    source/<assignment>/                 copy of the repository's exercise folder (solutions in)
    release/<assignment>/                student version made by ``release``
    submitted/<student>/<assignment>/    imported zips (``collect``)
    autograded/<student>/<assignment>/   nbgrader's autograded copies (``grade``)
    feedback/<student>/<assignment>/     feedback HTML (``report``)
    results/<assignment>/<student>.json  result records (:mod:`autograder.results`)
    grades/<assignment>.csv              the grade table (``report``)

The assignment name is the name of the exercise folder in the repository (``exercise_08``,
``exercise_08_optional``); ``source/`` is refreshed from those folders on every command, so the
repository is the single source of truth.

Student modules: a ``.py`` file under ``exercise_code/`` whose source version contains a
solution region is a student module. It is graded as the student submitted it (it is listed in
nbgrader's ``Autograde.exclude_overwriting``); every other file of the assignment is given and is
restored from ``source/`` when nbgrader autogrades.

``nbgrader_config.py`` sets ``CourseDirectory.root`` to the folder that holds it, so a copy of
the course directory (as ``grade`` makes for each submission) is a working course on its own.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .core.errors import AutograderError
from .core.paths import REPO_ROOT
from .core.settings import CELL_TIMEOUT_S
from .files import atomic_write

ASSIGNMENTS: tuple[str, ...] = ("exercise_08", "exercise_08_optional")
"""The assignments of the course, in release order; each is a folder of the repository."""

COURSE_ID = "exercise08"


HIDDEN_CELL: dict[str, str] = {"exercise_08": "hidden_accuracy"}
"""The graded cell that stands for the hidden-accuracy check in the gradebook (its points are
all-or-nothing, set by the grader from the model's accuracy on the hidden test set)."""

HIDDEN_PASS_ACCURACY = 0.55
"""Hidden-test accuracy at or above which the hidden-accuracy points are given."""

SOURCE_IGNORE = (
    "grading",
    "models",
    "data",
    "*.zip",
    "__pycache__",
    "*.pyc",
    ".ipynb_checkpoints",
    ".DS_Store",
    "__MACOSX",
    ".pytest_cache",
    "*.pt",
    "*.pt2",
    "*.pth",
)
"""Names never copied from an exercise folder into ``source/``: the trusted checks (``grading/``,
read by the grader from the repository), trained models, data, zips and caches of the
instructor's own runs. (A model in ``source/`` would overwrite the student's.)"""

NBGRADER_IGNORE = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "__MACOSX",
    ".DS_Store",
]

MARKER_WORDS = (
    "BEGIN " + "SOLUTION",
    "END " + "SOLUTION",
    "BEGIN " + "HIDDEN TESTS",
    "END " + "HIDDEN TESTS",
)
"""What nbgrader matches (as substrings), built from pieces so that this file does not contain
them literally."""
MARKERS = tuple(f"### {words}" for words in MARKER_WORDS)
SOLUTION_BEGIN, SOLUTION_END, HIDDEN_BEGIN, HIDDEN_END = MARKERS
"""nbgrader's markers as the source files write them: the one definition in the package."""


def exercise_dir(assignment: str) -> Path:
    """The repository folder of ``assignment`` (raises ``ValueError`` for an unknown name)."""
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"Unknown assignment {assignment!r}: use one of {', '.join(ASSIGNMENTS)}.")
    return REPO_ROOT / assignment


def source_dir(course_dir: Path, assignment: str) -> Path:
    """``<course_dir>/source/<assignment>``."""
    return Path(course_dir) / "source" / assignment


def release_dir(course_dir: Path, assignment: str) -> Path:
    """``<course_dir>/release/<assignment>``."""
    return Path(course_dir) / "release" / assignment


def submitted_dir(course_dir: Path, assignment: str, student_id: str) -> Path:
    """``<course_dir>/submitted/<student_id>/<assignment>`` (nbgrader's layout)."""
    return Path(course_dir) / "submitted" / student_id / assignment


def autograded_dir(course_dir: Path, assignment: str, student_id: str) -> Path:
    """``<course_dir>/autograded/<student_id>/<assignment>`` (nbgrader's layout)."""
    return Path(course_dir) / "autograded" / student_id / assignment


def feedback_dir(course_dir: Path, assignment: str, student_id: str) -> Path:
    """``<course_dir>/feedback/<student_id>/<assignment>`` (nbgrader's layout)."""
    return Path(course_dir) / "feedback" / student_id / assignment


def grades_csv(course_dir: Path, assignment: str) -> Path:
    """``<course_dir>/grades/<assignment>.csv``."""
    return Path(course_dir) / "grades" / f"{assignment}.csv"


def submitted_students(course_dir: Path, assignment: str) -> list[str]:
    """Ids of the students with a collected submission of ``assignment``, sorted."""
    root = Path(course_dir) / "submitted"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / assignment).is_dir())


def is_ignored(name: str) -> bool:
    """Whether a file or folder called ``name`` stays out of ``source/``."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in SOURCE_IGNORE)


def points_available(assignment: str, folder: Path | None = None) -> tuple[float, float]:
    """``(tests_max, hidden_max)`` of ``assignment`` from its notebooks' nbgrader metadata: the
    graded cells' points, and those of the hidden-accuracy cell (:data:`HIDDEN_CELL`).

    ``folder`` defaults to the repository's exercise folder; pass ``source_dir(course, name)``
    to count what is actually graded.
    """
    folder = exercise_dir(assignment) if folder is None else Path(folder)
    if not folder.is_dir():
        folder = exercise_dir(assignment)
    totals = [0.0, 0.0]
    for path in sorted(folder.glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") or meta.get("task"):
                hidden = meta.get("grade_id") == HIDDEN_CELL.get(assignment)
                totals[hidden] += float(meta.get("points", 0) or 0)
    return totals[0], totals[1]


def student_modules(assignment: str, folder: Path | None = None) -> list[str]:
    """The student modules of ``assignment`` as sorted POSIX paths relative to the exercise folder.

    ``folder`` defaults to the repository's exercise folder; a student module is a ``.py`` file
    under ``exercise_code/`` that contains a solution region (see the module docstring).
    """
    folder = exercise_dir(assignment) if folder is None else Path(folder)
    code = folder / "exercise_code"
    if not code.is_dir():
        return []
    found = []
    for path in sorted(code.rglob("*.py")):
        if any(is_ignored(part) for part in path.relative_to(folder).parts):
            continue
        if SOLUTION_BEGIN in path.read_text(encoding="utf-8"):
            found.append(path.relative_to(folder).as_posix())
    return found


def sync_source(course_dir: Path, assignment: str) -> Path:
    """Make ``source/<assignment>`` an exact copy of the repository's exercise folder.

    Models, data, zips and caches are left out (:data:`SOURCE_IGNORE`). The copy is built in a
    temporary folder and swapped in, so ``source/`` is never half-written. Returns the folder.
    """
    origin = exercise_dir(assignment)
    if not origin.is_dir():
        raise FileNotFoundError(
            f"The exercise folder {origin} is missing: restore it from git before running this."
        )
    target = source_dir(course_dir, assignment)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{assignment}.", dir=target.parent))
    try:
        shutil.copytree(
            origin,
            staging / assignment,
            ignore=lambda _dir, names: [n for n in names if is_ignored(n)],
        )
        if target.exists():
            old = staging / "old"
            target.rename(old)
        (staging / assignment).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def config_text(course_dir: Path) -> str:
    """The text of the course's ``nbgrader_config.py`` (built from the current source copies)."""
    exclude = {
        assignment: student_modules(assignment, source_dir(course_dir, assignment))
        for assignment in ASSIGNMENTS
        if source_dir(course_dir, assignment).is_dir()
    }
    return (
        "# Written by `python -m autograder` on every run: edit autograder/course.py instead.\n"
        "import os\n\n"
        "c = get_config()  # noqa: F821\n"
        "# The course is the folder that holds this file, so copies of it work on their own.\n"
        "c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.CourseDirectory.ignore = {NBGRADER_IGNORE!r}\n"
        "# The exchange (unused: zips are collected) lives in the course, so formgrader finds it.\n"
        "c.Exchange.root = os.path.join(c.CourseDirectory.root, 'exchange')\n"
        "# Student modules are graded as submitted; every other file is restored from source.\n"
        f"c.Autograde.exclude_overwriting = {exclude!r}\n"
        f"c.Execute.timeout = {CELL_TIMEOUT_S}\n"
    )


def write_config(course_dir: Path) -> Path:
    """Write ``<course_dir>/nbgrader_config.py`` atomically; return its path."""
    path = Path(course_dir) / "nbgrader_config.py"
    return write_course_file(path, config_text(course_dir).encode("utf-8"))


def write_course_file(path: Path, data: bytes) -> Path:
    """Write a file of the course for its instructors (config, grade table, feedback, LMS files)
    atomically, with the mode any file of theirs gets (0666 less the umask: 0644 with the usual
    022), the same as nbgrader's own feedback pages. Who may read the course is decided by the
    course folder's own permissions (``chmod 700 course`` keeps it to its owner)."""
    atomic_write(path, data)
    os.chmod(path, 0o666 & ~_umask())
    return Path(path)


def _umask() -> int:
    """This process's umask (from /proc, which needs no change of it; else set and reset)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def setup_course(course_dir: Path, assignments: list[str] | None = None) -> Path:
    """Create the course directory, refresh ``source/`` and write ``nbgrader_config.py``.

    Idempotent; every command calls it first. ``assignments`` defaults to all of
    :data:`ASSIGNMENTS` that exist in the repository. Returns the absolute course path.
    """
    course_dir = Path(course_dir).resolve()
    course_dir.mkdir(parents=True, exist_ok=True)
    if assignments is None:
        assignments = [a for a in ASSIGNMENTS if exercise_dir(a).is_dir()]
    for assignment in assignments:
        sync_source(course_dir, assignment)
    (course_dir / "exchange").mkdir(exist_ok=True)
    write_config(course_dir)
    return course_dir


def is_course(course_dir: Path) -> bool:
    """Whether ``course_dir`` is a course folder (``release`` made it: it holds
    ``nbgrader_config.py`` or ``gradebook.db``)."""
    course_dir = Path(course_dir)
    return (course_dir / "nbgrader_config.py").is_file() or (course_dir / "gradebook.db").is_file()


def require_course(course_dir: Path) -> Path:
    """The course folder ``course_dir``, resolved; raises ``AutograderError`` (one sentence) when
    it is not one, so that a mistyped ``--course-dir`` never starts an empty second course.

    Every command that works on an existing course calls it first (``collect``, ``grade``,
    ``report``); only ``release`` (and ``gradescope``, ``demo``, which release) make a course.
    """
    course_dir = Path(course_dir).resolve()
    if is_course(course_dir):
        return course_dir
    if not course_dir.exists():
        problem = "does not exist"
    else:
        problem = "is not a course folder (no gradebook.db or nbgrader_config.py)"
    raise AutograderError(f"{course_dir} {problem}: check --course-dir, or run release first.")


Scores = dict[tuple[str, str], float]
"""(notebook name, graded cell name) -> points."""


def gradebook_cells(course_dir: Path, assignment: str) -> Scores:
    """The points of every graded cell of ``assignment`` in ``course_dir/gradebook.db``.

    Raises ``AutograderError`` when the assignment has not been released into the gradebook.
    """
    from nbgrader.api import Gradebook, MissingEntry

    db = course_dir / "gradebook.db"
    message = f"{assignment} is not in {db}: run `python -m autograder release {assignment}` first."
    if not db.is_file():
        raise AutograderError(message)
    with Gradebook(f"sqlite:///{db}", COURSE_ID) as gb:
        try:
            found = gb.find_assignment(assignment)
        except MissingEntry:
            raise AutograderError(message) from None
        cells = {
            (notebook.name, cell.name): float(cell.max_score)
            for notebook in found.notebooks
            for cell in notebook.grade_cells
        }
    if not cells:
        raise AutograderError(message)
    return cells


@contextmanager
def course_lock(course_dir: Path, doing: str) -> Iterator[None]:
    """Hold the course's lock (``.grade.lock``, the file ``grade`` locks too) while ``doing``.

    Raises ``AutograderError`` at once if another command holds it.
    """
    course_dir = Path(course_dir)
    course_dir.mkdir(parents=True, exist_ok=True)
    with open(course_dir / ".grade.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AutograderError(
                f"Another command is using {course_dir}; wait for it to finish, then {doing} again."
            ) from None
        yield


def ensure_tools_on_path() -> None:
    """Put this Python's ``bin/`` first on ``PATH`` (nbgrader runs ``alembic`` and ``jupyter``).

    Without it, creating a gradebook fails when the virtualenv is not activated.
    """
    tools = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != tools:
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def nbgrader_api(course_dir: Path, **config_overrides: object):
    """An ``nbgrader.apps.NbGraderAPI`` for the course, configured from its ``nbgrader_config.py``.

    ``config_overrides`` are extra settings as ``"Section.name": value`` pairs passed as keywords
    through a dict, e.g. ``nbgrader_api(course, **{"Execute.timeout": 60})``.
    """
    ensure_tools_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    course_dir = Path(course_dir).resolve()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    extra = Config()
    for key, value in config_overrides.items():
        section, name = key.split(".", 1)
        extra[section][name] = value
    config.merge(extra)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)
