"""Benchmark of grading against plain ``nbgrader autograde``, measured from outside. Prints figures.

Everything is timed as a whole process (``python -m nbgrader autograde`` and ``python -m
autograder grade``), each run on a fresh copy of its course, with the CPU seconds of all its
processes together (a ``cpuacct`` cgroup per run: sandboxed jobs, kernels and Dask workers
included; without cgroups, what the process and the children it waited for used):

1. **Per submission.** Courses of 1 and of ``--copies`` (5) copies of the demo's reference
   submission, graded by both tools; the cost of one more submission is ``(T5 - T1) / 4``
   (target: ours at most x0.5 of nbgrader's), and one submission cold (T1, start-up included:
   target at most x1.0). ``--before COMMIT`` grades the same courses with that commit's
   ``grade`` (from a git worktree) for the before/after table.
2. **Where our time goes**, in this process without Dask: imports of a fresh interpreter, the
   Dask cluster's start, the workspace (warm parent, template gradebook, model images), then
   for each of two submissions the trusted checks, the model check, the notebook run for the
   feedback (its kernel start and its cells, from the autograded notebook) and the feedback,
   and the store and gradebook writes.
3. **A batch** of ``--batch`` (24) submissions (reference copies and untouched student
   versions, the demo's kinds) at ``--jobs 1`` and ``--jobs 2``: submissions per minute next to
   the limit the CPU allows (cores x 60 / CPU seconds of one further submission), and how busy
   the cores were (the batch's CPU seconds / (cores x its wall time)). More sizes
   (``--batch 24 96``) grade the larger ones at ``--jobs 2`` only.

Run it on an idle machine; on a shared virtual machine, whose speed can change by a quarter from
one minute to the next, with ``--repeat 2`` or more (the run of least wall time counts). Where
the kernel groups processes by session (``/proc/sys/kernel/sched_autogroup_enabled`` is 1),
``nice`` does not keep another session's work out of the way: give its group the lowest weight
(``echo 19 > /proc/PID/autogroup``).

Usage (from the repository root, as root, after ``python -m autograder data``)::

    python bench/bench_grading.py [--copies 5] [--batch 24 [96]] [--before COMMIT] [--skip-batch]
        [--reference ZIP] [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder import course  # noqa: E402
from autograder.collect import collect  # noqa: E402
from autograder.demo import reference_zip  # noqa: E402
from autograder.release import release  # noqa: E402

ASSIGNMENT = "exercise_08"
DATA = REPO / "data"
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
NBGRADER = [
    "-c",
    "import sys; from nbgrader.apps.nbgraderapp import main; sys.exit(main())",
    "autograde",
    ASSIGNMENT,
]


# ----------------------------------------------------------------------------- measuring


def timed_process(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """Run ``command`` to its end; ``(wall seconds, CPU seconds of all its processes)``."""
    group = None
    if (CPUACCT / "cpuacct.usage").exists() and os.geteuid() == 0:
        group = CPUACCT / f"bench-grading-{os.getpid()}-{time.monotonic_ns()}"
        group.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    preexec = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        preexec_fn=preexec,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if group is not None:
        cpu = int((group / "cpuacct.usage").read_text()) / 1e9
        with contextlib.suppress(OSError):
            group.rmdir()
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return wall, cpu


def make_course(root: Path, zips: dict[str, Path], repo: Path = REPO) -> Path:
    """A released course with ``zips`` (student id -> zip) collected; returns its folder."""
    course.REPO_ROOT = repo
    course_dir = root / "course"
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    for student, path in zips.items():
        shutil.copyfile(path, inbox / f"{student}.zip")
    release(course_dir, [ASSIGNMENT], dist_dir=root / "dist")
    collect(course_dir, ASSIGNMENT, [inbox])
    course.REPO_ROOT = REPO
    return course_dir


def fresh_copy(course_dir: Path, scratch: Path) -> Path:
    target = Path(tempfile.mkdtemp(dir=scratch)) / "course"
    shutil.copytree(course_dir, target, symlinks=True)
    return target


def grade_command(repo: Path, course_dir: Path, jobs: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        ASSIGNMENT,
        "--course-dir",
        str(course_dir),
        "--jobs",
        str(jobs),
    ]


def grade_points(course_dir: Path) -> str:
    """What ``grade`` gave, as "n x points" (so that a fast failure cannot look fast)."""
    from collections import Counter

    from autograder.results import read_results

    totals = Counter(f"{r['status']} {r['total']:g}" for r in read_results(course_dir, ASSIGNMENT))
    return ", ".join(f"{n} x {key}" for key, n in sorted(totals.items()))


def nbgrader_points(course_dir: Path) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        scores = [gradebook.find_submission(ASSIGNMENT, s.id).score for s in gradebook.students]
    return ", ".join(f"{s:g}" for s in sorted(scores))


# ----------------------------------------------------------------------------- 1. per submission


def per_submission(
    courses: dict[int, Path], scratch: Path, before: Path | None, repeat: int = 1
) -> dict:
    """Wall and CPU seconds of each tool on each course, alternating the tools; with
    ``repeat`` rounds, the round of least wall time counts for each tool and course."""
    tools = {"nbgrader": None, "grade": REPO}
    if before is not None:
        tools["before"] = before
    figures: dict[str, dict[int, tuple[float, float, str]]] = {t: {} for t in tools}
    rounds = [(count, template) for _ in range(repeat) for count, template in courses.items()]
    for count, template in rounds:
        for tool, repo in tools.items():
            copy = fresh_copy(template, scratch)
            if tool == "nbgrader":
                wall, cpu = timed_process(
                    [sys.executable, *NBGRADER], copy, {"COURSE_DATA_DIR": str(DATA)}
                )
                points = nbgrader_points(copy)
            else:
                env = {"PYTHONPATH": str(repo)}
                wall, cpu = timed_process(grade_command(repo, copy), repo, env)
                points = grade_points(copy)
            if count not in figures[tool] or wall < figures[tool][count][0]:
                figures[tool][count] = (wall, cpu, points)
            cells = _cell_seconds(copy / "autograded" / "s00" / ASSIGNMENT / "autoencoder.ipynb")
            print(
                f"  {tool:9s} {count} submission(s): {wall:6.1f} s wall, {cpu:6.1f} s CPU "
                f"({points}; the notebook of s00: {len(cells)} cells run in "
                f"{sum(cells.values()):.1f} s)",
                flush=True,
            )
            shutil.rmtree(copy.parent, ignore_errors=True)
    return figures


def further(figures: dict[int, tuple[float, float, str]], copies: int) -> tuple[float, float]:
    """(wall, CPU) seconds of each further submission: (T_copies - T_1) / (copies - 1)."""
    return tuple((figures[copies][i] - figures[1][i]) / (copies - 1) for i in (0, 1))


# ----------------------------------------------------------------------------- 2. breakdown


def breakdown(course_dir: Path) -> list[tuple[str, float]]:
    """Seconds of each step of ``grade``, run in this process (see the module docstring)."""
    from autograder.core.settings import GradeSettings
    from autograder.engine import grading_client, grading_spec
    from autograder.grade import _sync_gradebook
    from autograder.grading import submission as submission_module
    from autograder.grading.spec import submission_sha256
    from autograder.grading.workspace import Workspace
    from autograder.store import Store

    steps: list[tuple[str, float]] = []
    _, cpu = timed_process(
        [
            sys.executable,
            "-c",
            "import autograder.cli, autograder.grade, autograder.engine, autograder.grading",
        ],
        REPO,
    )
    steps.append(("interpreter start and imports (CPU s of a fresh process)", cpu))
    settings = GradeSettings.from_env()
    start = time.perf_counter()
    with grading_client(None, 1, settings, False):
        steps.append(("Dask LocalCluster start and stop (1 worker)", 0.0))
    steps[-1] = (steps[-1][0], time.perf_counter() - start)
    spec = grading_spec(course_dir, ASSIGNMENT, settings)
    start = time.perf_counter()
    workspace = Workspace.prepare(spec)
    workspace.warm.ready.wait(120)
    steps.append(
        (
            "workspace: warm parent ready, template gradebook, model images",
            time.perf_counter() - start,
        )
    )
    wrapped = {}
    for name in (
        "_trusted_verdicts",
        "_run_model",
        "_autograde",
        "_keep_feedback",
        "_hidden_check",
    ):
        real = getattr(submission_module, name)

        def timer(*args, _real=real, _name=name, **kwargs):
            began = time.perf_counter()
            try:
                return _real(*args, **kwargs)
            finally:
                wrapped.setdefault(_name, []).append(time.perf_counter() - began)

        setattr(submission_module, name, timer)
    kept = {}
    real_keep = submission_module.kept_feedback

    def keep(autograded, notebooks, verdicts):
        kept["cells"] = _cell_seconds(autograded / f"{notebooks[0]}.ipynb")
        return real_keep(autograded, notebooks, verdicts)

    submission_module.kept_feedback = keep
    store = Store.for_course(course_dir, None)
    try:
        for round_ in (1, 2):
            student = course.submitted_students(course_dir, ASSIGNMENT)[0]
            sha = submission_sha256(course_dir, ASSIGNMENT, student)
            start = time.perf_counter()
            record = submission_module.grade_submission(workspace, student, sha, None)
            total = time.perf_counter() - start
            label = "first submission" if round_ == 1 else "a further submission"
            steps.append((f"{label}: all ({record.total:g}/100)", total))
            for name in (
                "_trusted_verdicts",
                "_run_model",
                "_hidden_check",
                "_autograde",
                "_keep_feedback",
            ):
                steps.append(
                    (
                        f"  {name.strip('_').replace('_', ' ')}"
                        + (" (inside trusted verdicts)" if name == "_run_model" else "")
                        + (" (parallel to the trusted verdicts)" if name == "_autograde" else ""),
                        wrapped[name][-1],
                    )
                )
            cells = kept.get("cells", {})
            executed = sum(cells.values())
            steps.append((f"    cells executed ({len(cells)} of them)", executed))
            steps.append(
                (
                    "    around them: nbgrader's app, the kernel's start, writing the notebook",
                    wrapped["_autograde"][-1] - executed,
                )
            )
            start = time.perf_counter()
            row = store.enqueue(ASSIGNMENT, student, sha, spec.grader_version, force=True)
            store.claim(row.id, "bench")
            store.finish(row.id, record.to_dict())
            _sync_gradebook(store, course_dir, ASSIGNMENT, [student])
            steps.append(("  store and gradebook writes", time.perf_counter() - start))
    finally:
        workspace.close()
    return steps


def _cell_seconds(notebook_path: Path) -> dict[str, float]:
    """Seconds of each executed cell, from the execution timestamps nbclient records."""
    try:
        notebook = json.loads(notebook_path.read_text())
    except (OSError, ValueError):
        return {}
    seconds = {}
    for index, cell in enumerate(notebook.get("cells", [])):
        if "skip-execution" in cell.get("metadata", {}).get("tags", []):
            continue  # not run: its stamps are the student's own run's
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            began, ended = (
                datetime.datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                for k in ("iopub.execute_input", "shell.execute_reply")
            )
            seconds[str(index)] = (ended - began).total_seconds()
    return seconds


# ----------------------------------------------------------------------------- 3. batch


def batch(
    template: Path, scratch: Path, jobs: int, repo: Path = REPO, repeat: int = 1
) -> tuple[float, float, str]:
    """``grade --jobs jobs`` of a fresh copy of ``template``: the run of least wall time of
    ``repeat``."""
    best = None
    for _ in range(repeat):
        copy = fresh_copy(template, scratch)
        env = {"PYTHONPATH": str(repo)}
        wall, cpu = timed_process(grade_command(repo, copy, jobs), repo, env)
        points = grade_points(copy)
        shutil.rmtree(copy.parent, ignore_errors=True)
        if repeat > 1:
            print(f"    a run: {wall:.1f} s, {cpu:.1f} CPU s ({points})", flush=True)
        if best is None or wall < best[0]:
            best = (wall, cpu, points)
    return best


# ----------------------------------------------------------------------------- main


def before_worktree(commit: str, root: Path) -> Path:
    """A git worktree of ``commit`` sharing this repository's data folder."""
    tree = root / f"before-{commit[:8]}"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), commit],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree / "data", ignore_errors=True)  # its tracked files only; ours are used
    (tree / "data").symlink_to(DATA)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[24], help="batch sizes (--jobs 1 for the first)"
    )
    parser.add_argument("--before", help="also grade with the grade command of this commit")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each measurement; the least wall time counts (for a noisy machine)",
    )
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-breakdown", action="store_true")
    parser.add_argument(
        "--reference",
        type=Path,
        help="grade this zip (default: the demo's reference, made if missing)",
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cores} cores, "
        f"load {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    scratch = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    before = None
    try:
        reference = args.reference or reference_zip(REPO / "course" / "bench-cache", DATA)
        untouched = release(scratch / "student", [ASSIGNMENT], dist_dir=scratch / "dist")[0]
        courses = {
            n: make_course(scratch / f"t{n}", {f"s{i:02d}": reference for i in range(n)})
            for n in (1, args.copies)
        }
        if args.before:
            before = before_worktree(args.before, scratch)
            print(f"before: {args.before} in {before}", flush=True)
        print("1. per submission (whole processes, fresh course copies)", flush=True)
        figures = per_submission(courses, scratch, before, args.repeat)
        nb_wall, nb_cpu = further(figures["nbgrader"], args.copies)
        rows = [("nbgrader", nb_wall, nb_cpu, figures["nbgrader"][1][:2])]
        for tool in [t for t in figures if t != "nbgrader"]:
            wall, cpu = further(figures[tool], args.copies)
            rows.append((tool, wall, cpu, figures[tool][1][:2]))
        print(
            "\n| tool | further submission: wall s (x nbgrader) | CPU s (x nbgrader) "
            "| one cold: wall s (x nbgrader) | CPU s |"
        )
        print("|---|---|---|---|---|")
        for tool, wall, cpu, (cold_wall, cold_cpu) in rows:
            print(
                f"| {tool} | {wall:.1f} (x{wall / nb_wall:.2f}) | "
                f"{cpu:.1f} (x{cpu / nb_cpu:.2f}) | "
                f"{cold_wall:.1f} (x{cold_wall / rows[0][3][0]:.2f}) | {cold_cpu:.1f} |"
            )
        further_cpu = further(figures["grade"], args.copies)[1]
        if not args.skip_breakdown:
            print("\n2. where the time of grade goes (seconds, this process, no Dask)", flush=True)
            for label, seconds in breakdown(fresh_copy(courses[1], scratch)):
                print(f"  {seconds:6.2f}  {label}")
        if not args.skip_batch:
            limits = {t: cores * 60 / further(figures[t], args.copies)[1] for t in figures}
            for number, size in enumerate(args.batch):
                copies = max(size - size // 4, 1)
                zips = {f"r{i:02d}": reference for i in range(copies)}
                zips |= {f"u{i:02d}": untouched for i in range(size - copies)}
                template = make_course(scratch / f"batch-{size}", zips)
                print(
                    f"\n3. batch of {size} ({copies} reference copies, {size - copies} "
                    f"untouched); CPU limit {limits['grade']:.1f}/min ({cores} cores x 60 / "
                    f"{further_cpu:.1f} CPU s of a further submission)",
                    flush=True,
                )
                runs = [("grade", REPO, 2)]
                if number == 0:
                    runs = [("grade", REPO, 1), *runs]
                    runs += [("before", before, 2)] if before is not None else []
                for tool, repo, jobs in runs:
                    wall, cpu, points = batch(template, scratch, jobs, repo, args.repeat)
                    rate = size * 60 / wall
                    print(
                        f"  {tool} --jobs {jobs}: {wall:.1f} s, {rate:.1f} submissions/min "
                        f"({100 * rate / limits[tool]:.0f}% of its CPU limit), {cpu:.1f} CPU s, "
                        f"{cpu / size:.1f} CPU s each, the cores busy "
                        f"{100 * cpu / (cores * wall):.0f}% of the time ({points})",
                        flush=True,
                    )
        print(f"\nload {os.getloadavg()[0]:.1f} at the end")
    finally:
        if before is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before)], cwd=REPO, capture_output=True
            )
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
