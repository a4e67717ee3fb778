"""``demo``: the whole pipeline on built-in sample submissions, ending with the grade table.

The demo course is ``<course-dir>/demo/`` (so it never mixes with a real class) and its student
zips are made here:

- ``reference``: the source notebook executed with nbclient in a temporary copy of the exercise
  (it trains and saves its model there), then zipped with the student-side
  ``exercise_code.submission.create_submission()``. The zip is cached in the demo course, keyed
  by a hash of the source exercise, so a second demo does not train again.
- ``untouched``: the student version from the release (``dist``'s zip), handed in as it is.
- ``broken``: the reference zip cut in half (a broken upload).

Then ``collect``, ``grade`` and ``report`` run as an instructor would run them, the table is
printed, and the demo checks the outcome it promises: the reference gets full marks, the
untouched version 0 test points, the broken zip a rejected row.

Entry point: :func:`demo`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import course
from .course import AutograderError, ensure_tools_on_path, exercise_dir, is_ignored

ASSIGNMENT = "exercise_08"
NOTEBOOK = "autoencoder.ipynb"
CELL_TIMEOUT_S = 900
SUBMISSION_TIMEOUT_S = 300


def demo(
    course_dir: Path = Path("course"), jobs: int = 1, cache_dir: Path | None = None
) -> list[dict]:
    """Run the demo in ``<course_dir>/demo``; print the grade table; return its rows.

    ``cache_dir`` (default ``<course_dir>/demo/cache``) keeps the reference submission between
    runs. Raises ``AutograderError`` if a sample does not get the outcome the demo promises.
    """
    from .collect import collect
    from .data import prepare
    from .grade import grade
    from .release import release
    from .report import grade_rows, report

    start = time.perf_counter()
    root = (Path(course_dir) / "demo").resolve()
    demo_course, inbox = root / "course", root / "inbox"
    data_dir = course.REPO_ROOT / "data"
    _step("Preparing the data (idempotent)")
    prepare(data_dir, log=lambda message: None)
    _step("Releasing the student version")
    (student_zip,) = release(demo_course, [ASSIGNMENT], dist_dir=root / "dist")
    _step("Making the sample submissions")
    reference = reference_zip(Path(cache_dir) if cache_dir else root / "cache", data_dir)
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir(parents=True)
    shutil.copyfile(reference, inbox / "reference_solution.zip")
    shutil.copyfile(student_zip, inbox / "untouched_student_version.zip")
    data = reference.read_bytes()
    (inbox / "broken_upload.zip").write_bytes(data[: len(data) // 2])
    _step("collect")
    collect(demo_course, ASSIGNMENT, [inbox])
    _step("grade")
    grade(demo_course, ASSIGNMENT, jobs=jobs)
    _step("report")
    report(demo_course, ASSIGNMENT)
    rows = grade_rows(demo_course, ASSIGNMENT)
    problems = check_outcome(rows)
    minutes = (time.perf_counter() - start) / 60
    if problems:
        raise AutograderError(f"The demo did not give the promised grades: {'; '.join(problems)}.")
    print(
        f"\nDemo done in {minutes:.1f} min: the reference solution got full marks, the untouched "
        f"student version 0 test points, the broken zip a rejected row. Course: {demo_course}"
    )
    return rows


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def check_outcome(rows: list[dict]) -> list[str]:
    """What is wrong with the demo's grade rows (empty if all is as promised)."""
    by_id = {row["student_id"]: row for row in rows}
    problems = []
    if set(by_id) != {"reference", "untouched", "broken"}:
        problems.append(f"the rows are {sorted(by_id)}")
        return problems
    ref, untouched, broken = by_id["reference"], by_id["untouched"], by_id["broken"]
    if ref["status"] != "graded" or ref["total"] != ref["total_max"]:
        problems.append(f"reference got {ref['total']}/{ref['total_max']} ({ref['message']})")
    if untouched["tests_score"] != 0 or untouched["hidden_score"] != 0:
        problems.append(f"the untouched version got {untouched['total']} points")
    if "NotImplementedError" not in (untouched["message"] or ""):
        problems.append(f"the untouched version's message is {untouched['message']!r}")
    if broken["status"] != "rejected":
        problems.append(f"the broken zip has status {broken['status']}")
    return problems


def source_hash(folder: Path) -> str:
    """sha256 over the exercise's files (names and contents), models and caches left out."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(is_ignored(part) for part in relative.parts):
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def reference_zip(cache_dir: Path, data_dir: Path) -> Path:
    """The reference submission zip (cached by the source's hash; made if missing)."""
    source = exercise_dir(ASSIGNMENT)
    cached = cache_dir / f"reference-{source_hash(source)[:16]}.zip"
    if cached.is_file():
        print(f"Using the cached reference submission {cached.name} (the source is unchanged).")
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autograder-reference-") as temp:
        copy = Path(temp) / ASSIGNMENT
        shutil.copytree(source, copy, ignore=lambda _d, names: [n for n in names if is_ignored(n)])
        seconds = run_notebook(copy / NOTEBOOK, data_dir)
        print(f"Executed the reference notebook in {seconds:.0f} s.")
        made = make_submission(copy, data_dir)
        for old in cache_dir.glob("reference-*.zip"):
            old.unlink()
        tmp = cached.with_name(f".{cached.name}.tmp")
        shutil.copyfile(made, tmp)
        os.replace(tmp, cached)
    return cached


def _student_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"}
    env["COURSE_DATA_DIR"] = str(Path(data_dir).resolve())
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def run_notebook(path: Path, data_dir: Path) -> float:
    """Execute ``path`` in place with nbclient as a student would; return the seconds taken.

    The kernel gets ``COURSE_DATA_DIR`` and no ``NBGRADER_EXECUTION``, so the notebook trains.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    ensure_tools_on_path()
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute(env=_student_env(data_dir))
    except CellExecutionError as error:
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(error)).strip()
        first = text.splitlines()[-1] if text else type(error).__name__
        raise AutograderError(
            f"The reference notebook {path.name} failed ({first[:200]}); run it by hand, fix it "
            "and run the demo again."
        ) from error
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def make_submission(folder: Path, data_dir: Path) -> Path:
    """Call the student-side ``create_submission()`` in ``folder``; return the zip it wrote."""
    code = (
        "from exercise_code.submission import create_submission; "
        "create_submission('reference_submission.zip')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=_student_env(data_dir),
        capture_output=True,
        text=True,
        timeout=SUBMISSION_TIMEOUT_S,
    )
    made = folder / "reference_submission.zip"
    if done.returncode != 0 or not made.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AutograderError(
            f"create_submission() failed for the reference solution ({last[:200]}); run the "
            "notebook by hand and check that it saves models/classifier.pt2."
        )
    return made
