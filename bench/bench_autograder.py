"""Benchmark of the autograder: grading one exercise_08 submission, the hidden check alone, and
``--jobs 1`` vs ``--jobs 2`` on a few submissions. Prints its figures (it is not a test).

Usage (from the repository root, after ``python -m autograder data``)::

    python bench/bench_autograder.py [--submissions 4]

It releases exercise_08 into a temporary course, makes the reference submission the way the demo
does (cached in ``course/demo/cache``, so it trains only when the source changed) and collects
copies of it under several student ids.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autograder import course, results  # noqa: E402
from autograder.collect import collect  # noqa: E402
from autograder.demo import reference_zip  # noqa: E402
from autograder.grade import GradeSettings, grade  # noqa: E402
from autograder.hidden_check import check_hidden_accuracy, load_hidden_images  # noqa: E402
from autograder.release import release  # noqa: E402
from autograder.sandbox import Sandbox  # noqa: E402

ASSIGNMENT = "exercise_08"


def _timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def _forget(course_dir: Path, students: list[str]) -> None:
    for student in students:
        results.delete_result(course_dir, ASSIGNMENT, student)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=4)
    parser.add_argument("--hidden-repeats", type=int, default=3)
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="a submission zip to grade (default: the demo's)",
    )
    args = parser.parse_args()
    data_dir = course.REPO_ROOT / "data"
    settings = GradeSettings.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-autograder-") as temp:
        temp = Path(temp)
        course_dir, inbox = temp / "course", temp / "inbox"
        release(course_dir, [ASSIGNMENT], dist_dir=temp / "dist")
        reference = args.reference or reference_zip(
            course.REPO_ROOT / "course" / "demo" / "cache", data_dir
        )
        inbox.mkdir()
        students = [f"s{number}" for number in range(1, args.submissions + 1)]
        for student in students:
            shutil.copyfile(reference, inbox / f"{student}.zip")
        collect(course_dir, ASSIGNMENT, [inbox])

        one = _timed(grade, course_dir, ASSIGNMENT, students=students[:1], jobs=1)
        record = results.read_result(course_dir, ASSIGNMENT, students[0])

        images_s = time.perf_counter()
        images = load_hidden_images(data_dir)
        images_s = time.perf_counter() - images_s
        model = temp / "model"
        with zipfile.ZipFile(reference) as archive:
            archive.extract("models/classifier.pt2", model)
        rules = course.source_dir(course_dir, ASSIGNMENT) / "exercise_code" / "model_rules.py"
        hidden = []
        for repeat in range(args.hidden_repeats):
            sandbox = Sandbox(settings.hidden_timeout_s, settings.hidden_memory_bytes)
            hidden.append(
                _timed(
                    check_hidden_accuracy,
                    model / "models" / "classifier.pt2",
                    rules,
                    images,
                    data_dir,
                    temp / f"hidden{repeat}",
                    sandbox,
                    course.HIDDEN_POINTS[ASSIGNMENT],
                    course.HIDDEN_PASS_ACCURACY,
                )
            )

        _forget(course_dir, students)
        jobs1 = _timed(grade, course_dir, ASSIGNMENT, jobs=1)
        _forget(course_dir, students)
        jobs2 = _timed(grade, course_dir, ASSIGNMENT, jobs=2)

    n = len(students)
    print("\n## autograder benchmark")
    print(
        f"one submission (autograde + hidden check): {one:.1f} s  -> {record['status']}, "
        f"{record['total']:g}/{record['total_max']:g}, hidden accuracy {record['hidden_accuracy']}"
    )
    runs = ", ".join(f"{seconds:.2f}" for seconds in hidden)
    print(
        f"hidden check alone (process start incl.): runs {runs} s, median "
        f"{statistics.median(hidden):.2f} s (loading the hidden images once: {images_s:.2f} s)"
    )
    print(f"{n} submissions, --jobs 1: {jobs1:.1f} s ({jobs1 / n:.1f} s each)")
    print(
        f"{n} submissions, --jobs 2: {jobs2:.1f} s ({jobs2 / n:.1f} s each), "
        f"speed-up {jobs1 / jobs2:.2f}x"
    )


if __name__ == "__main__":
    main()
