"""Benchmark of the grading engine on the stand-in exercise of ``tests/corpus_behaviour.py``.

Prints (it is not a test): grading one submission (sandboxed nbgrader autograde + hidden
check), the hidden check alone (cold: the warm parent starts and imports torch; warm: one
forked worker; and the fallback of a fresh sandboxed process), ``--jobs 1`` vs ``--jobs 2`` on
a few good submissions, and the whole hardening corpus graded with ``--jobs 2``.

Usage (from the repository root, after ``python -m autograder data``)::

    python bench/bench_grading.py [--submissions 4] [--no-corpus]

The stand-in's notebook runs in a second, so these figures are the grader's own overhead; the
real exercise adds its notebook's run time under autograding (``bench_autograder.py``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import corpus_behaviour as cb  # noqa: E402

from autograder import course, hidden_check, results  # noqa: E402
from autograder.collect import collect  # noqa: E402
from autograder.grade import GradeSettings, grade  # noqa: E402
from autograder.release import release  # noqa: E402
from autograder.sandbox import Sandbox, reserved_uids  # noqa: E402

ASSIGNMENT = "exercise_08"


def _timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def _zips(folder: Path, kinds: dict[str, dict], copies: int = 1) -> Path:
    folder.mkdir()
    for kind, files in kinds.items():
        for number in range(copies):
            name = kind if copies == 1 else f"{kind}{number}"
            cb.write_zip(files, folder / f"{name}.zip")
    return folder


def _hidden_check_seconds(models: dict, data_dir: Path, repeats: int) -> dict:
    images = hidden_check.load_hidden_images(data_dir)
    rules = cb.REAL_EXERCISE / "exercise_code" / "model_rules.py"
    runs: dict[str, list[float]] = {"cold": [], "warm": [], "fresh process": []}
    work = Path(tempfile.mkdtemp(prefix="bench-hidden-"))
    work.chmod(0o711)
    try:
        with reserved_uids(1) as (uid,):
            sandbox = Sandbox(120, 6 * 2**30, uid=uid, hidden_paths=(str(data_dir),))

            def once(label: str, number: int) -> None:
                seconds = _timed(
                    hidden_check.check_hidden_accuracy,
                    models["good"],
                    rules,
                    images,
                    data_dir,
                    work / f"{label.replace(' ', '_')}{number}",
                    sandbox,
                    50.0,
                    0.55,
                )
                runs[label].append(seconds)

            hidden_check.shutdown()
            once("cold", 0)
            for number in range(repeats):
                once("warm", number)
            hidden_check.shutdown()
            hidden_check._ZYGOTE.broken = True
            for number in range(repeats):
                once("fresh process", number)
            hidden_check.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=4)
    parser.add_argument("--hidden-repeats", type=int, default=3)
    parser.add_argument("--no-corpus", action="store_true")
    args = parser.parse_args()
    data_dir = REPO / "data"
    settings = GradeSettings(
        autograde_timeout_s=60,
        cell_timeout_s=15,
        autograde_memory_bytes=3 * 2**30,
        data_dir=data_dir,
    )
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as temp:
        temp = Path(temp)
        course.REPO_ROOT = temp / "repo"
        cb.make_exercise(course.REPO_ROOT)
        course_dir = temp / "course"
        release(course_dir, [ASSIGNMENT], dist_dir=temp / "dist")
        context = cb.corpus_context(temp, course_dir, data_dir)
        release_dir = course_dir / "release" / ASSIGNMENT
        good = cb.corpus(release_dir, context, ["good"])
        collect(course_dir, ASSIGNMENT, [_zips(temp / "good", good, args.submissions)])
        students = course.submitted_students(course_dir, ASSIGNMENT)

        one = _timed(grade, course_dir, ASSIGNMENT, students[:1], 1, settings)
        hidden = _hidden_check_seconds(context["models"], data_dir, args.hidden_repeats)
        for student in students:
            results.delete_result(course_dir, ASSIGNMENT, student)
        jobs1 = _timed(grade, course_dir, ASSIGNMENT, None, 1, settings)
        for student in students:
            results.delete_result(course_dir, ASSIGNMENT, student)
        jobs2 = _timed(grade, course_dir, ASSIGNMENT, None, 2, settings)

        corpus_seconds = None
        if not args.no_corpus:
            corpus_dir = temp / "corpus_course"
            release(corpus_dir, [ASSIGNMENT], dist_dir=temp / "dist2")
            context["course_dir"] = corpus_dir
            kinds = cb.corpus(corpus_dir / "release" / ASSIGNMENT, context)
            pattern = r"^(?P<id>[a-z0-9_]+)\.zip$"
            collect(corpus_dir, ASSIGNMENT, [_zips(temp / "corpus", kinds)], id_pattern=pattern)
            corpus_seconds = _timed(grade, corpus_dir, ASSIGNMENT, None, 2, settings)

    n = len(students)
    print("\n## grading benchmark (stand-in exercise)")
    print(f"one submission (sandboxed autograde + hidden check, cold): {one:.1f} s")
    for label, values in hidden.items():
        print(
            f"hidden check alone, {label}: median {statistics.median(values):.2f} s "
            f"over {len(values)} run(s)"
        )
    print(f"{n} submissions, --jobs 1: {jobs1:.1f} s ({jobs1 / n:.1f} s each)")
    speedup = jobs1 / jobs2
    print(f"{n} submissions, --jobs 2: {jobs2:.1f} s ({jobs2 / n:.1f} s each), x{speedup:.2f}")
    if corpus_seconds is not None:
        print(f"hardening corpus ({len(cb.CHANGES)} submissions), --jobs 2: {corpus_seconds:.0f} s")


if __name__ == "__main__":
    main()
