"""Benchmark of grading, before and after the trusted grader, in one run. Prints its figures.

1. One real exercise_08 submission (the reference, made as the demo makes it): plain
   ``nbgrader autograde`` of it (no sandbox, no checks), ``grade`` as it is now (sandboxed
   autograde, trusted checks and the model check in parallel), with the trusted checks' own time,
   and ``grade`` of the grader BEFORE (``--before``, default f3a5a59, run from a git worktree with
   its own data folder) on its own reference submission.
2. The stand-in corpus (``tests/corpus_behaviour.py``): the kinds both graders handle, graded
   with ``--jobs 2`` by the grader now and the grader before.

Both print the points they gave, so that a grader that failed fast cannot look fast. The grader
before limits each process's address space (``RLIMIT_AS``), not the job's memory; it gets 12 GB
here, as torch 2.14 maps more than the 3 GB it used to get (with 3 GB its notebook stops at
``import torch`` and the run takes half the time for half the points).

Usage (from the repository root, as root, after ``python -m autograder data``)::

    python bench/bench_grading.py [--before COMMIT] [--repeats 2] [--skip-before]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import corpus_behaviour as cb  # noqa: E402

from autograder import course, results  # noqa: E402
from autograder import grade as grade_module  # noqa: E402
from autograder.collect import collect  # noqa: E402
from autograder.demo import reference_zip  # noqa: E402
from autograder.grade import GradeSettings, grade  # noqa: E402
from autograder.release import release  # noqa: E402

ASSIGNMENT = "exercise_08"
CORPUS_KINDS = [
    "good",
    "untouched",
    "stderr_in_test",
    "notebook_missing",
    "exercise_code_raises",
    "model_missing",
    "model_untrained",
    "model_conv",
    "model_public_test_lookup",
    "infinite_loop",
    "memory_blowup",
    "megabytes_of_printing",
    "writes_gradebook_and_others",
    "tries_network",
]
"""Kinds of the corpus that both graders know how to handle (the rest are new attacks)."""

BEFORE_SCRIPT = """
import sys, time
from pathlib import Path
from autograder import collect, course, demo, grade, release
root, zip_or_corpus, data = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
if len(sys.argv) > 4:
    course.REPO_ROOT = Path(sys.argv[4])
course_dir = root / "course"
release.release(course_dir, ["exercise_08"], dist_dir=root / "dist")
collect.collect(course_dir, "exercise_08", [zip_or_corpus], id_pattern=r"^(?P<id>.+)\\.zip$")
settings = grade.GradeSettings(data_dir=data, autograde_timeout_s=120, cell_timeout_s=30,
                               autograde_memory_bytes=12 * 2**30)
start = time.perf_counter()
grade.grade(course_dir, "exercise_08", jobs=int(sys.argv[5]) if len(sys.argv) > 5 else 1,
            settings=settings)
print(f"SECONDS {time.perf_counter() - start:.2f}")
if len(sys.argv) > 6:  # nbgrader's own autograde of the same submission, as a floor
    import os, subprocess
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbgrader", "autograde", "exercise_08", "--force"],
                   cwd=course_dir, env={**os.environ, "COURSE_DATA_DIR": str(data)},
                   capture_output=True, check=True)
    print(f"PLAIN {time.perf_counter() - start:.2f}")
"""


def _timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def _course_with(zip_folder: Path, root: Path, repo: Path | None = None) -> Path:
    course_dir = root / "course"
    if repo is not None:
        course.REPO_ROOT = repo
    release(course_dir, [ASSIGNMENT], dist_dir=root / "dist")
    collect(course_dir, ASSIGNMENT, [zip_folder], id_pattern=r"^(?P<id>.+)\.zip$")
    return course_dir


def _points(course_dir: Path) -> str:
    return "; ".join(
        f"{r['student_id']}: {r['status']} {r['total']:g}/100"
        for r in sorted(results.read_results(course_dir, ASSIGNMENT), key=lambda r: r["student_id"])
    )


def plain_autograde(course_dir: Path) -> float:
    """nbgrader's own autograde of the collected submissions, as nbgrader ships it."""
    return _timed(
        subprocess.run,
        [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
        cwd=course_dir,
        env={**os.environ, "COURSE_DATA_DIR": str(REPO / "data")},
        capture_output=True,
        check=True,
    )


def trusted_seconds() -> list[float]:
    """Wrap the grader's trusted checks to record how long each submission's take."""
    seconds: list[float] = []
    real = grade_module._trusted_verdicts

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    grade_module._trusted_verdicts = timed
    return seconds


def before_worktree(commit: str, root: Path) -> tuple[Path, Path]:
    """A worktree of the grader before, with its own copy of the prepared data."""
    tree = root / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), commit],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    data = tree / "data"
    for part in ("MNIST/raw", "splits", "cache"):
        if (REPO / "data" / part).exists():
            shutil.copytree(REPO / "data" / part, data / part, dirs_exist_ok=True)
    return tree, data


def run_before(
    tree: Path, data: Path, inbox: Path, root: Path, repo: Path | None, jobs: int, plain=False
) -> tuple[float, float | None]:
    """Seconds the grader before took to grade ``inbox`` (and plain nbgrader, if ``plain``)."""
    args = [sys.executable, "-c", BEFORE_SCRIPT, str(root), str(inbox), str(data)]
    args += [str(repo or tree), str(jobs)] + (["plain"] if plain else [])
    done = subprocess.run(args, cwd=tree, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    seconds = float(done.stdout.split("SECONDS")[-1].split()[0])
    points = [line.split(" in ")[0] for line in done.stdout.splitlines() if "/100 in " in line]
    print(f"  before graded: {'; '.join(points)}")
    return seconds, float(done.stdout.split("PLAIN")[-1].split()[0]) if plain else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="f3a5a59")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-before", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    root.chmod(0o755)
    load = os.getloadavg()[0]
    print(f"root: {os.geteuid() == 0}; load at start {load:.1f}")
    try:
        tree = data_before = None
        if not args.skip_before:
            tree, data_before = before_worktree(args.before, root)
            subprocess.run(
                [sys.executable, "-m", "autograder", "data", "--data-dir", str(data_before)],
                cwd=tree,
                check=True,
                capture_output=True,
            )

        # 1. One real submission.
        inbox = root / "real-inbox"
        inbox.mkdir()
        shutil.copyfile(
            reference_zip(REPO / "course" / "demo" / "cache", REPO / "data"),
            inbox / "reference.zip",
        )
        plain, now, checks = [], [], trusted_seconds()
        for repeat in range(args.repeats):
            course_dir = _course_with(inbox, root / f"real-{repeat}")
            plain.append(plain_autograde(course_dir))
            results.delete_result(course_dir, ASSIGNMENT, "reference")
            now.append(_timed(grade, course_dir, ASSIGNMENT, settings=GradeSettings()))
        print("\n## one real exercise_08 submission (the reference)")
        print(f"plain nbgrader autograde: {', '.join(f'{s:.1f}' for s in plain)} s")
        print(
            f"grade now:               {', '.join(f'{s:.1f}' for s in now)} s "
            f"(x{statistics.median(now) / statistics.median(plain):.2f} of plain)"
        )
        print(f"  now graded: {_points(course_dir)}")
        print(f"  trusted checks + model check: {', '.join(f'{s:.1f}' for s in checks)} s")
        if tree is not None:
            before_inbox = root / "before-inbox"
            before_inbox.mkdir()
            made = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from pathlib import Path; from autograder import demo; "
                    "print(demo.reference_zip(Path(sys.argv[1]), Path(sys.argv[2])))",
                    str(root / "before-cache"),
                    str(data_before),
                ],
                cwd=tree,
                capture_output=True,
                text=True,
                check=True,
                timeout=3600,
            )
            shutil.copyfile(made.stdout.strip().splitlines()[-1], before_inbox / "reference.zip")
            runs = [
                run_before(tree, data_before, before_inbox, root / f"before-{r}", None, 1, True)
                for r in range(args.repeats)
            ]
            graded, plain_before = [s for s, _ in runs], [p for _, p in runs]
            ratio = statistics.median(graded) / statistics.median(plain_before)
            print(
                f"grade before ({args.before}), its own reference: "
                f"{', '.join(f'{s:.1f}' for s in graded)} s; plain nbgrader autograde of that "
                f"reference: {', '.join(f'{p:.1f}' for p in plain_before)} s "
                f"(x{ratio:.2f} of plain)"
            )

        # 2. The stand-in corpus.
        repo = root / "standin-repo"
        cb.make_exercise(repo)
        course.REPO_ROOT = repo
        release(root / "corpus-release", [ASSIGNMENT], dist_dir=root / "corpus-dist")
        context = cb.corpus_context(root, root / "corpus-release", REPO / "data")
        corpus_inbox = root / "corpus-inbox"
        corpus_inbox.mkdir()
        for kind, files in cb.corpus(
            root / "corpus-release" / "release" / ASSIGNMENT, context, CORPUS_KINDS
        ).items():
            cb.write_zip(files, corpus_inbox / f"{kind}.zip")
        corpus_course = _course_with(corpus_inbox, root / "corpus-now", repo)
        settings = GradeSettings(
            autograde_timeout_s=120,
            cell_timeout_s=30,
            probe_timeout_s=30,
            autograde_memory_bytes=3 * 2**30,
            data_dir=REPO / "data",
        )
        seconds = _timed(grade, corpus_course, ASSIGNMENT, jobs=2, settings=settings)
        print(f"\n## stand-in corpus, {len(CORPUS_KINDS)} kinds both graders handle, --jobs 2")
        print(f"grade now:    {seconds:.1f} s ({seconds / len(CORPUS_KINDS):.1f} s each)")
        print(f"  now graded: {_points(corpus_course)}")
        if tree is not None:
            before, _ = run_before(tree, data_before, corpus_inbox, root / "corpus-before", repo, 2)
            print(f"grade before: {before:.1f} s ({before / len(CORPUS_KINDS):.1f} s each)")
        print(f"load at end {os.getloadavg()[0]:.1f}")
    finally:
        if not args.skip_before:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(root / "before")],
                cwd=REPO,
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
