"""``gradescope``: grade on Gradescope with the same engine as ``grade``.

:func:`build` writes ``<out_dir>/<assignment>-gradescope.zip``, the autograder to upload on the
assignment's "Configure Autograder" page. It is the instructor's secret (reference solution,
trusted checks, course key, hidden test set): upload it to Gradescope only. Its root holds::

    setup.sh            run once as root when Gradescope builds the image: Python 3.11, a venv
                        in /autograder/venv, the pinned requirements.txt (torch as a CPU build)
    run_autograder      run for every submission: ``python -m autograder gradescope-run
                        --assignment <assignment>``
    requirements.txt    what grading needs (:data:`GRADING_PACKAGES`), with the course's pins
    autograder/         this package
    <exercise>/         the SOURCE exercise folder(s) with grading/ (exercise_08 always: the
                        grader uses its data modules); owner-only
    data/hidden/        course key, hidden test set, manifest (owner-only)
    data/MNIST/raw/train-*, data/splits/   the training files and splits the verdicts use

Before packing, ``build`` releases the assignment into ``course_dir`` (nbgrader plus the leak
scan, ``dist`` zip included), so what students get and what Gradescope grades come from one
checked source; on Gradescope, :func:`run` releases the same source again.

:func:`run` (``python -m autograder gradescope-run``) grades ``/autograder/submission`` in a
temporary course: release, ``collect`` of the submission under the neutral id ``submission``
(a zip as uploaded, under its own name, or the files Gradescope unpacked from it, packed into
one called "your upload": collect's messages name what the student uploaded), ``grade`` (the
sandbox, the trusted checks, the hidden check) and the result record turned into
``/autograder/results/results.json``: ``score`` is the record's total; one test per graded
cell (name, score, max_score, output: the record's reason or "Passed."; the hidden-accuracy test
gives the accuracy and the pass mark); ``output`` is the record's message. Every text goes
through :func:`autograder.results.clean_text`; no text comes from hidden tests' source. The
grader's own printing goes to Gradescope's stdout, which only instructors see
(``stdout_visibility: hidden``). A results.json saying "grading stopped" is written first, so a
run killed at Gradescope's time or memory limit still leaves one; any other failure ends with
score 0 and one sentence.

On Gradescope ``run_autograder`` runs as root, so student code runs under its own user id;
Docker there may refuse namespaces, in which case ``grade`` prints its isolation warning (to
stdout) and :func:`run` makes the exercise folders owner-only first. Raise Gradescope's
defaults (768 MB memory, half a CPU) in the assignment's Autograder Settings: the grader's own
limits allow 4 GB for the notebook's autograde plus 2 GB for a trusted check at the same time,
so give it about 6 GB and 2 CPUs. (The reference exercise_08 submission grades in about 25 s on
2 cores, bench/RESULTS.md, so the default 10 minutes leave room.)

Gradescope's documentation used (its source is github.com/gradescope/autograder_samples, docs/):

- "Autograder Specifications", https://gradescope-autograders.readthedocs.io/en/latest/specs/
  (zip root with setup.sh and run_autograder, /autograder/source, /autograder/submission,
  /autograder/results/results.json fields, visibility and stdout_visibility values);
- "Technical Details", https://gradescope-autograders.readthedocs.io/en/latest/tech/
  (Docker image on Ubuntu, one fresh container per submission);
- "Base Images", https://gradescope-autograders.readthedocs.io/en/latest/base_images/
  (Ubuntu 22.04 by default, selectable);
- "Troubleshooting", https://gradescope-autograders.readthedocs.io/en/latest/troubleshooting/
  (768 MB memory, 10 minute timeout and half a CPU by default; a missing or malformed
  results.json fails the run).

Entry points: :func:`build` and :func:`run`.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

from . import course
from .collect import Limits, collect
from .core.paths import PACKAGE_DIR
from .core.settings import GradeSettings
from .course import AutograderError
from .files import atomic_write
from .grading.local import grade_collected
from .release import ZIP_DATE, release
from .results import clean_text, read_result

STUDENT = "submission"
"""The student id of the one submission graded in a Gradescope container."""
DEFAULT_ROOT = Path("/autograder")
DATA_FILES = (
    "hidden/course_key",
    "hidden/hidden-images-idx3-ubyte",
    "hidden/hidden-labels-idx1-ubyte",
    "hidden/manifest.json",
    "MNIST/raw/train-images-idx3-ubyte",
    "MNIST/raw/train-labels-idx1-ubyte",
)
"""The data files shipped (the split files of ``data/splits/`` too); never the official test."""
GRADING_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "matplotlib",
    "ipywidgets",
    "tqdm",
    "nbgrader",
    "jupyterlab",
    "ipykernel",
    "nbclient",
    "jinja2",
    "sqlalchemy",
    "alembic",
)
"""What grading needs on Gradescope, installed there with the pins of ``requirements.txt``: the
notebook's packages (it runs under nbgrader), nbgrader and what it runs the notebook with
(jupyterlab is a requirement of nbgrader itself), and the store that ``collect`` writes a
rejected upload's record into. The one submission is graded in the container's own process
(:func:`autograder.grading.local.grade_collected`), so Dask is not needed; the course's test,
lint and browser tools, the Slurm and PostgreSQL drivers and the submission service are left
out. A package grading starts to need must be added here."""
PASSED = "Passed."
HIDDEN_NAME = "Hidden test set accuracy"
MAX_TITLE_CHARS = 80

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
if ! apt-get install -y python3.11 python3.11-venv; then
    # Ubuntu releases without Python 3.11 (24.04 and later): the deadsnakes archive has it.
    apt-get install -y software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y python3.11 python3.11-venv
fi
python3.11 -m venv /autograder/venv
PIP="/autograder/venv/bin/python -m pip"
$PIP install --upgrade pip
# torch and torchvision at their pinned versions as CPU builds (Gradescope has no GPU, and the
# CUDA libraries would add gigabytes); if that index cannot be reached, the next line installs
# the same pins from PyPI.
$PIP install --index-url https://download.pytorch.org/whl/cpu \\
    $(grep -E '^(torch|torchvision)==' /autograder/source/requirements.txt) || true
$PIP install -r /autograder/source/requirements.txt
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this, as root, for every submission. AUTOGRADER_ROOT (default /autograder)
# and AUTOGRADER_PYTHON (default /autograder/venv/bin/python) are for testing this folder
# layout elsewhere.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-/autograder/venv/bin/python}"
rm -f "$ROOT/results/results.json"
cd "$ROOT/source" && "$PYTHON" -m autograder gradescope-run --root "$ROOT" --assignment @ASSIGNMENT@
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    mkdir -p "$ROOT/results"
    printf '{"score": 0, "output": "%s"}\\n' "The autograder could not start (status $status);\
 ask your instructor to look at the autograder output." > "$ROOT/results/results.json"
fi
"""


# ----------------------------------------------------------------------------- build


def build(course_dir: Path, assignment: str, out_dir: Path, data_dir: Path | None = None) -> Path:
    """Write ``out_dir/<assignment>-gradescope.zip`` (layout: module docstring); return it.

    ``data_dir`` defaults to the one ``grade`` uses (``AUTOGRADER_DATA_DIR`` or ``data/``).
    Raises ``AutograderError`` when the data is not prepared or the release leaks.
    """
    course.exercise_dir(assignment)
    data_dir = Path(data_dir or GradeSettings.from_env().data_dir)
    _check_data(data_dir)
    requirements = PACKAGE_DIR.parent / "requirements.txt"
    if not requirements.is_file():
        raise AutograderError(
            f"{requirements} is missing; restore it from git, then build the Gradescope zip again."
        )
    release(course_dir, [assignment], dist_dir=Path(out_dir))
    files: dict[str, tuple[Path | bytes, int]] = {
        "setup.sh": (SETUP_SH.encode(), 0o755),
        "run_autograder": (RUN_AUTOGRADER.replace("@ASSIGNMENT@", assignment).encode(), 0o755),
        "requirements.txt": (grading_requirements(requirements.read_text()), 0o644),
    }
    files |= _tree(PACKAGE_DIR, "autograder", 0o644)
    for exercise in dict.fromkeys([assignment, "exercise_08"]):
        files |= _tree(course.exercise_dir(exercise), exercise, 0o600)
    for name in DATA_FILES:
        files[f"data/{name}"] = (data_dir / name, 0o600 if name.startswith("hidden/") else 0o644)
    files |= _tree(data_dir / "splits", "data/splits", 0o644)
    target = Path(out_dir) / f"{assignment}-gradescope.zip"
    _write_zip(files, target)
    print(
        f"Wrote {target} ({target.stat().st_size / 2**20:.1f} MB): upload it on Gradescope's "
        "Configure Autograder page; it holds the solutions and the hidden test set, so keep it "
        "private."
    )
    return target


def grading_requirements(text: str) -> bytes:
    """The lines of ``requirements.txt`` (``text``) that pin :data:`GRADING_PACKAGES`, under a
    comment saying so. Raises ``AutograderError`` when one of them is not pinned there."""
    pinned = {}
    for line in text.splitlines():
        requirement = line.split("#", 1)[0].strip()
        name = re.split(r"[\[=<>~! ;]", requirement, maxsplit=1)[0].lower()
        if name in GRADING_PACKAGES:
            pinned[name] = requirement
    missing = [name for name in GRADING_PACKAGES if name not in pinned]
    if missing:
        raise AutograderError(
            f"requirements.txt pins no {', '.join(missing)}, which grading on Gradescope needs; "
            "pin it there and build the Gradescope zip again."
        )
    header = (
        "# What grading needs on Gradescope, with the course's pins (autograder/gradescope.py,\n"
        "# GRADING_PACKAGES); the course's own test and lint tools are left out.\n"
    )
    return (header + "".join(f"{pinned[name]}\n" for name in GRADING_PACKAGES)).encode()


def _check_data(data_dir: Path) -> None:
    from .data import course_key, load_hidden_set

    missing = [name for name in DATA_FILES if not (data_dir / name).is_file()]
    if missing or not (data_dir / "splits").is_dir():
        raise AutograderError(
            f"{data_dir} lacks {', '.join(missing) or 'splits/'}: run `python -m autograder data` "
            "first."
        )
    try:
        course_key(data_dir)
        load_hidden_set(data_dir)
    except (FileNotFoundError, ValueError) as error:
        raise AutograderError(str(error)) from error


def _tree(folder: Path, prefix: str, mode: int) -> dict[str, tuple[Path, int]]:
    """``{prefix/relative path: (file, mode)}`` of the files below ``folder``, leaving out what
    ``course/`` leaves out (models, data, zips, caches) except ``grading/``."""
    found = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d == "grading" or not course.is_ignored(d))
        for name in sorted(names):
            path = Path(root) / name
            if not course.is_ignored(name) and path.is_file() and not path.is_symlink():
                found[f"{prefix}/{path.relative_to(folder).as_posix()}"] = (path, mode)
    return found


def _write_zip(files: dict[str, tuple[Path | bytes, int]], target: Path) -> None:
    """Write ``{name: (file or bytes, mode)}`` deterministically (sorted, fixed dates, Unix
    modes; a folder holding only owner-only files is owner-only too), atomically."""
    below: dict[str, set[int]] = {}
    for name, (_, mode) in files.items():
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            below.setdefault("/".join(parts[:depth]) + "/", set()).add(mode)
    entries = {
        folder: (b"", 0o700 if modes == {0o600} else 0o755) for folder, modes in below.items()
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (content, mode) in sorted({**entries, **files}.items()):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            kind = stat.S_IFDIR if name.endswith("/") else stat.S_IFREG
            info.external_attr = (kind | mode) << 16 | (0x10 if kind == stat.S_IFDIR else 0)
            archive.writestr(info, content if isinstance(content, bytes) else content.read_bytes())
    atomic_write(target, buffer.getvalue())


# ----------------------------------------------------------------------------- run


def run(root: Path = DEFAULT_ROOT, assignment: str = "exercise_08") -> dict:
    """Grade ``root/submission`` for ``assignment``, write ``root/results/results.json`` and
    return its content. Never raises for a submission or grading problem: the results then give
    score 0 and one sentence."""
    root = Path(root)
    start = time.monotonic()
    _write_results(
        root,
        _failure(
            "Grading stopped before it finished, probably at the autograder's time or memory "
            "limit; ask your instructor to look at it."
        ),
    )
    work = Path(tempfile.mkdtemp(prefix="autograder-gradescope-"))
    try:
        _permissions(root.resolve(), assignment)
        results = _grade_submission(root / "submission", assignment, work)
    except Exception as error:  # the results must say something in every case
        traceback.print_exc()
        results = _failure(
            f"The autograder could not grade this submission ({type(error).__name__}: "
            f"{clean_text(error, 300).rstrip('.')}); ask your instructor to look at it."
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["execution_time"] = round(time.monotonic() - start)
    _write_results(root, results)
    print(f"Gradescope results: {results['score']:g} points. {results['output']}")
    return results


def _grade_submission(submission: Path, assignment: str, work: Path) -> dict:
    print(f"Grading {submission} for {assignment} with {PACKAGE_DIR}.", flush=True)
    upload = _submission_zip(submission, work / "upload")
    if upload is None:
        return _failure("Your submission is empty: upload the zip that create_submission() writes.")
    course_dir = work / "course"
    release(course_dir, [assignment], dist_dir=work / "dist")
    outcomes = collect(course_dir, assignment, [upload], student_id=STUDENT)
    if not outcomes:
        notebooks = ", ".join(
            sorted(p.name for p in course.exercise_dir(assignment).glob("*.ipynb"))
        )
        return _failure(
            f"Your submission holds another assignment's notebooks, not {notebooks}: upload the "
            f"zip that create_submission() of {assignment} writes."
        )
    if outcomes[0].status == "collected":
        settings = GradeSettings.from_env()
        record = grade_collected(course_dir, assignment, STUDENT, settings).to_dict()
    else:
        record = read_result(course_dir, assignment, STUDENT)
    if record is None:
        raise AutograderError("collect wrote no record for the rejected submission")
    if record.get("flags"):
        print(f"Flag for the instructor: {clean_text(record['flags'])}.")
    return _results(record, assignment, _titles(course_dir, assignment))


def _permissions(root: Path, assignment: str) -> None:
    """As root: the exercise folders (solutions, trusted checks) readable by root only, in case
    Gradescope's unzip dropped their modes and its Docker refuses the namespaces that cover them
    in the sandbox (``grade`` restricts ``data/hidden`` itself); and ``root`` and the folders
    between it and this package enterable, so that the sandbox user reaches Python and the
    package (the sandbox can reveal only one private folder above them)."""
    if os.geteuid() != 0:
        return
    for folder in {root, *(p for p in PACKAGE_DIR.parents if root in p.parents)}:
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(stat.S_IMODE(folder.stat().st_mode) | 0o111)
    for exercise in {course.exercise_dir(assignment), course.exercise_dir("exercise_08")}:
        if exercise.is_dir() and not exercise.is_symlink():
            exercise.chmod(0o700)


def _submission_zip(folder: Path, work: Path) -> Path | None:
    """The submission as one zip for ``collect``: the uploaded zip if that is all there is
    (under the student's own file name, which collect's messages then name), else the regular
    files below ``folder`` packed into "your upload" (stopping past ``collect``'s limits, so an
    oversized upload is rejected with collect's sentence). None when there is no file."""
    limits = Limits()
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if stat.S_ISREG(path.lstat().st_mode):
                files.append(path)
    if not files:
        return None
    work.mkdir(parents=True)
    if len(files) == 1 and files[0].suffix.lower() == ".zip":
        target = work / files[0].name
        shutil.copyfile(files[0], target)
        return target
    target = work / "your upload"
    total = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for count, path in enumerate(files, 1):
            archive.write(path, path.relative_to(folder).as_posix())
            total += path.stat().st_size
            if count > limits.max_entries or total > limits.max_total_bytes:
                break
    return target


def _titles(course_dir: Path, assignment: str) -> dict[str, str]:
    """``{grade_id: title}`` from the first line of each graded cell of the source notebooks
    (``# Test (6 points): Encoder. Checks ...`` gives ``Encoder``, ``# 2 points. dropout_forward:
    ...`` gives ``dropout_forward``); a line that is part of a hidden region, or does not have
    that form, gives no title."""
    pattern = re.compile(
        r"#\s*(?:hidden\s+)?(?:test\s*)?\(?\s*\d+(?:\.\d+)?\s+points?\s*\)?\s*[:.]\s*(.+)", re.I
    )
    titles = {}
    for path in sorted(course.source_dir(course_dir, assignment).glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            source = cell.get("source", "")
            lines = ("".join(source) if isinstance(source, list) else source).splitlines()
            match = pattern.fullmatch(lines[0].strip()) if lines else None
            if grade_id and match and not any(m in lines[0] for m in course.MARKERS):
                title = re.split(r"\. |: |, | \(", match.group(1))[0].strip()[:MAX_TITLE_CHARS]
                if not re.match(r"\w*[_(]", title):  # a code name keeps its case
                    title = title[:1].upper() + title[1:]
                titles[grade_id] = title
    return titles


def _results(record: dict, assignment: str, titles: dict[str, str]) -> dict:
    """Gradescope's results.json content for a result record."""
    tests = []
    for detail in record.get("details") or []:
        cell = str(detail["item"]).rpartition(": ")[2]
        hidden = cell == course.HIDDEN_CELL.get(assignment)
        title = HIDDEN_NAME if hidden else titles.get(cell)
        output = clean_text(detail.get("reason")) or PASSED
        if hidden and output == PASSED and record.get("hidden_accuracy") is not None:
            output = (
                f"Accuracy on the hidden test set: {record['hidden_accuracy']:.2f} (pass mark "
                f"{course.HIDDEN_PASS_ACCURACY:.2f}): passed."
            )
        tests.append(
            {
                "name": clean_text(f"{title} ({cell})" if title else cell.capitalize(), 200),
                "score": float(detail["score"]),
                "max_score": float(detail["max"]),
                "output": output,
                "visibility": "visible",
            }
        )
    return {
        "score": float(record.get("total") or 0.0),
        "output": clean_text(record.get("message")) or "Every graded part passed.",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "status": clean_text(record.get("status"), 50),
            "hidden_accuracy": record.get("hidden_accuracy"),
        },
    }


def _failure(sentence: str) -> dict:
    return {
        "score": 0.0,
        "output": clean_text(sentence),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    }


def _write_results(root: Path, results: dict) -> None:
    text = json.dumps(results, indent=2, allow_nan=False) + "\n"
    atomic_write(root / "results" / "results.json", text.encode())
