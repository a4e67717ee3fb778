"""Command line of the autograder: parses arguments and calls one step's entry point.

Run from the repository root::

    python -m autograder data
    python -m autograder release [ASSIGNMENT...] [--dist-dir DIR]
    python -m autograder collect ASSIGNMENT PATH... [--id-pattern REGEX]
    python -m autograder collect ASSIGNMENT PATH... --from moodle|canvas --roster CSV
    python -m autograder grade ASSIGNMENT [--student ID...] [--jobs N | --scheduler ADDR]
                               [--force] [--database URL] [--dashboard]
    python -m autograder report ASSIGNMENT [--lms moodle|canvas --roster CSV [--canvas-column C]]
    python -m autograder demo [--jobs N]
    python -m autograder gradescope ASSIGNMENT [--out DIR]
    python -m autograder tokens ASSIGNMENT --roster CSV --out FILE [--instructor NAME...]
    python -m autograder serve [--host H] [--port P] [--scheduler ADDR] [--database URL]
                               [--deadline [A=]ISO8601] [--daily-cap N] [--counts A=best|last]
    python -m autograder gradescope-run [--root DIR] [--assignment ASSIGNMENT]

Every command takes ``--course-dir DIR`` (default ``course``; the demo uses its own course in
``DIR/demo/course``); with it, ``release`` writes its zips into ``DIR/dist`` unless
``--dist-dir`` says otherwise, so nothing is written outside DIR. A problem the person running
the command can fix ends the command with one sentence on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .course import ASSIGNMENTS, AutograderError
from .store.store import DATABASE_VARIABLE


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--course-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="nbgrader course directory (default: course)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Release, collect, grade and report exercise 08 with nbgrader.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser(
        "data", parents=[common], help="prepare and verify MNIST, the splits and the hidden set"
    )
    data.add_argument("--data-dir", type=Path, default=Path("data"), help="default: data")

    release = commands.add_parser(
        "release", parents=[common], help="build the student versions and dist/ zips"
    )
    release.add_argument(
        "assignments", nargs="*", metavar="ASSIGNMENT", help="default: all assignments"
    )
    release.add_argument(
        "--dist-dir",
        type=Path,
        default=None,
        help="where the student zips go (default: dist, or COURSE_DIR/dist with --course-dir)",
    )

    collect = commands.add_parser("collect", parents=[common], help="import student zips")
    collect.add_argument("assignment", metavar="ASSIGNMENT", choices=ASSIGNMENTS)
    collect.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="zip or folder (or an LMS download)"
    )
    collect.add_argument(
        "--id-pattern",
        default=None,
        help="regex applied to the zip's file name; group 'id' (or group 1) is the student id",
    )
    collect.add_argument(
        "--from",
        dest="lms",
        choices=("moodle", "canvas"),
        default=None,
        help="PATH is that LMS's bulk download of the assignment (its zip or unpacked folder)",
    )
    collect.add_argument(
        "--roster",
        type=Path,
        default=None,
        metavar="CSV",
        help="with --from: maps LMS ids to student ids (columns lms_id, student_id, ...)",
    )

    grade = commands.add_parser("grade", parents=[common], help="autograde + hidden check")
    grade.add_argument("assignment", metavar="ASSIGNMENT", choices=ASSIGNMENTS)
    grade.add_argument("--student", action="append", default=None, metavar="ID")
    grade.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="worker processes of the embedded cluster"
    )
    grade.add_argument(
        "--scheduler",
        default=os.environ.get("AUTOGRADER_SCHEDULER"),
        metavar="ADDR",
        help="grade on the Dask cluster of this scheduler, tcp://HOST:PORT "
        "(default: $AUTOGRADER_SCHEDULER, else an embedded cluster of --jobs workers)",
    )
    grade.add_argument(
        "--force",
        action="store_true",
        help="grade again even when unchanged (with --student: those)",
    )
    grade.add_argument("--dashboard", action="store_true", help="serve Dask's dashboard on :8787")

    report = commands.add_parser("report", parents=[common], help="grade table and feedback")
    report.add_argument("assignment", metavar="ASSIGNMENT", choices=ASSIGNMENTS)
    report.add_argument(
        "--lms", choices=("moodle", "canvas"), help="also write this LMS's grade-import files"
    )
    report.add_argument("--roster", type=Path, help="CSV of LMS ids and student ids (with --lms)")
    report.add_argument(
        "--canvas-column", help="Canvas gradebook column, e.g. 'Exercise 08 (4711)' (with --lms)"
    )

    for command in (grade, report):
        command.add_argument(
            "--database",
            default=None,
            metavar="URL",
            help="SQLAlchemy URL of the grader's database (default: COURSE_DIR/grading.sqlite)",
        )

    demo = commands.add_parser(
        "demo", parents=[common], help="the whole pipeline on sample submissions"
    )
    demo.add_argument("--jobs", type=int, default=1, metavar="N", help="grade N at a time")

    tokens = commands.add_parser(
        "tokens", parents=[common], help="login tokens for the submission service"
    )
    tokens.add_argument("assignment", metavar="ASSIGNMENT", choices=ASSIGNMENTS)
    tokens.add_argument("--roster", type=Path, required=True, metavar="CSV", help="the roster")
    tokens.add_argument("--out", type=Path, required=True, metavar="FILE", help="a new file")
    tokens.add_argument("--instructor", action="append", default=[], metavar="NAME")

    serve = commands.add_parser(
        "serve", parents=[common], help="the submission service (upload, grade, see the result)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="default: 8000")
    serve.add_argument(
        "--scheduler",
        default=os.environ.get("AUTOGRADER_SCHEDULER"),
        metavar="ADDR",
        help="grade on this Dask scheduler (default: an embedded cluster of --jobs workers)",
    )
    serve.add_argument("--jobs", type=int, default=1, metavar="N", help="embedded workers")
    serve.add_argument(
        "--deadline",
        action="append",
        default=[],
        metavar="[ASSIGNMENT=]ISO8601",
        help="uploads close then (with ASSIGNMENT=: that assignment's own deadline)",
    )
    serve.add_argument("--daily-cap", type=int, default=5, metavar="N", help="default: 5")
    serve.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB")
    serve.add_argument(
        "--counts",
        action="append",
        default=[],
        metavar="ASSIGNMENT=best|last",
        help="which upload counts (default: best)",
    )
    serve.add_argument(
        "--behind-https", action="store_true", help="behind a TLS proxy: Secure cookies"
    )
    for command in (tokens, serve):
        command.add_argument("--database", default=None, metavar="URL")

    gradescope = commands.add_parser(
        "gradescope", parents=[common], help="build the autograder zip to upload on Gradescope"
    )
    gradescope.add_argument("assignment", metavar="ASSIGNMENT", choices=ASSIGNMENTS)
    gradescope.add_argument("--out", type=Path, default=Path("dist"), help="default: dist")
    gradescope_run = commands.add_parser(
        "gradescope-run", help="grade a submission inside Gradescope (what run_autograder calls)"
    )
    gradescope_run.add_argument(
        "--root", type=Path, default=Path("/autograder"), help="default: /autograder"
    )
    gradescope_run.add_argument(
        "--assignment", choices=ASSIGNMENTS, default="exercise_08", help="default: exercise_08"
    )
    return parser


def _run(args: argparse.Namespace) -> None:
    course_dir = getattr(args, "course_dir", Path("course"))
    if getattr(args, "database", None):
        os.environ[DATABASE_VARIABLE] = args.database
    if args.command == "data":
        from .data import run

        run(args.data_dir)
    elif args.command == "release":
        from .release import release

        dist_dir = args.dist_dir
        if dist_dir is None:
            dist_dir = course_dir / "dist" if hasattr(args, "course_dir") else Path("dist")
        release(course_dir, args.assignments or list(ASSIGNMENTS), dist_dir=dist_dir)
    elif args.command == "collect":
        from .collect import collect

        collect(
            course_dir,
            args.assignment,
            args.paths,
            id_pattern=args.id_pattern,
            lms=args.lms,
            roster=args.roster,
        )
    elif args.command == "grade":
        if args.jobs < 1:
            raise AutograderError("--jobs must be at least 1.")
        from .grade import grade

        grade(
            course_dir,
            args.assignment,
            students=args.student,
            jobs=args.jobs,
            scheduler=args.scheduler,
            force=args.force,
            dashboard=args.dashboard,
        )
    elif args.command == "report":
        from .report import report

        report(course_dir, args.assignment, args.lms, args.roster, args.canvas_column)
    elif args.command == "demo":
        from .demo import demo

        demo(course_dir, jobs=args.jobs)
    elif args.command == "tokens":
        from .tokens import issue_tokens

        issue_tokens(course_dir, args.assignment, args.roster, args.out, args.instructor)
    elif args.command == "serve":
        from .service.app import serve
        from .service.config import ServiceConfig, parse_counts, parse_deadlines

        if args.jobs < 1 or args.daily_cap < 1 or args.max_upload_mb <= 0:
            raise AutograderError("--jobs, --daily-cap and --max-upload-mb must be positive.")
        deadline, deadlines = parse_deadlines(args.deadline, ASSIGNMENTS)
        config = ServiceConfig(
            course_dir=course_dir,
            database=args.database,
            scheduler=args.scheduler,
            jobs=args.jobs,
            deadline=deadline,
            deadlines=deadlines,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            daily_cap=args.daily_cap,
            counts=parse_counts(args.counts),
            behind_https=args.behind_https,
        )
        serve(config, args.host, args.port)
    elif args.command == "gradescope":
        from .gradescope import build

        build(course_dir, args.assignment, args.out)
    elif args.command == "gradescope-run":
        from .gradescope import run

        run(args.root, args.assignment)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (AutograderError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted; run the same command again to continue.", file=sys.stderr)
        return 130
    return 0
