"""The hostile corpus: every bad or hostile submission ends in its row with the points it
deserves, in one batch next to good ones, and the whole machine is as it was afterwards.

All kinds of :mod:`corpus_behaviour` (plus good submissions under student ids that look like the
grader's own folder and file names) are collected and graded together with ``jobs=3`` and
short limits. Then, on the whole machine: no process of a sandbox user id or carrying the
daemons' mark, no new System V IPC object, no file written outside the course (the canary, the
repository, the data folder, every folder a submission tried), no leftover cgroup; the real
gradebook holds the trusted scores; no feedback shows a hidden test or live markup; the CSV
holds no control character; and a re-run changes nothing.

``CORPUS_KINDS=kind,kind,...`` grades only those kinds (and no id collisions): to see quickly
which tests fail when a defence is taken out while working on it.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import hashlib
import io
import json
import os
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import corpus_behaviour as cb
import hostile_code as hostile
import pytest

from autograder import collect, course, release
from autograder.grade import GradeSettings, grade
from autograder.grading import feedback
from autograder.report import report
from autograder.results import read_results
from autograder.sandbox import SANDBOX_UID_BASE, support

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="full isolation needs root")
LITTER = (Path("/tmp/autograder-corpus-litter"), Path("/var/tmp/autograder-corpus-litter"))
HOST_LEFTOVERS = (
    Path("/run/lock/autograder-corpus-fill"),
    Path("/dev/shm/autograder-corpus-fill"),
    Path("/var/tmp/autograder-corpus-fill"),
    Path("/run/autograder-corpus-fill"),
    Path("/dev/shm/autograder-corpus-shm"),
    Path("/dev/mqueue/autograder-corpus-mq"),
)
TRIED_FOLDERS = ("/", "/etc", "/usr", "/var", "/opt", "/srv", "/home", "/root", "/mnt", "/work")

WRONG = "answer() is 41, expected 42"
STUBBED = "answer() raised NotImplementedError"
NO_DATA = "The check of test_answer got no usable data from your code"
NOTEBOOK_STOPPED = ("error", "timeout")
"""The row's status when a notebook that eats memory is stopped: by its memory limit, or, on a
busy machine, by its time limit first (its points come from the trusted checks either way)."""

EXPECTED = {
    # kind: (status, words in the message, total of 100)
    "good": ("graded", "", 100),
    "untouched": ("graded", "answer() raised NotImplementedError", 0),
    "stderr_in_test": ("graded", "", 100),
    "notebook_missing": ("error", "has no autoencoder.ipynb", 75),
    "notebook_renamed": ("error", "has no autoencoder.ipynb", 75),
    "notebook_not_json": ("error", "not a valid notebook", 75),
    "graded_cells_deleted": ("graded", "", 100),
    "graded_cells_edited": ("graded", WRONG, 50),
    "exercise_code_missing": ("graded", "No module named 'exercise_code.answer'", 50),
    "exercise_code_raises": ("graded", "RuntimeError: half-written module", 50),
    "model_missing": ("graded", "No models/classifier.pt2 in your submission", 50),
    "model_untrained": ("graded", "below the 0.55 needed", 50),
    "model_conv": ("graded", "only linear layers are allowed", 50),
    "model_public_test_lookup": ("graded", "below the 0.55 needed", 50),
    "model_pickled_weights": ("graded", "as a pickle", 50),
    "model_pickled_sample_inputs": ("graded", "", 100),
    "model_guard_code": ("graded", "guard code", 50),
    "infinite_loop": ("timeout", "took longer than", 75),
    "kernel_kills_itself": ("error", "ended the process", 75),
    "memory_blowup": (NOTEBOOK_STOPPED, "MB of memory", 75),
    "memory_across_processes": (NOTEBOOK_STOPPED, "MB of memory", 75),
    "memory_across_spawned_interpreters": (NOTEBOOK_STOPPED, "MB of memory", 75),
    "megabytes_of_printing": ("graded", "", 100),
    "fills_the_disk": ("error", "more than 200 MB of files", 75),
    "writes_gradebook_and_others": ("graded", "", 100),
    "searches_hidden_labels": ("graded", "", 100),
    "tries_network": ("graded", "", 100),
    "setsid_daemon": ("graded", "", 100),
    "double_fork_nohup": ("graded", "", 100),
    "aa_saboteur_of_the_next_slot": (None, "", 100),
    "aa_spy_on_the_next_slot": (None, "", 100),
    "fork_bomb": (None, STUBBED, 50),
    "shell_fork_bomb": (None, STUBBED, 50),
    "ipc_leftovers": ("graded", "", 100),
    "ipc_reaches_the_host": ("graded", "", 100),
    "writes_everywhere": ("graded", "", 100),
    "fills_run_lock": ("graded", "", 100),
    "plants_symlinks": ("error", "could not run your notebook to its end", 100),
    "plants_device_links": ("error", "could not run your notebook to its end", 100),
    "snoops_proc": ("graded", "", 100),
    "snoops_proc_deeper": ("graded", "", 100),
    "gradebook_manual_score": ("graded", STUBBED, 50),
    "gradebook_trigger": ("graded", STUBBED, 50),
    "gradebook_rewriter": ("graded", STUBBED, 50),
    "lenient_public_check": ("graded", "answer() is '42.0', expected 42", 50),
    "swallows_errors": ("graded", WRONG, 50),
    "rewrites_later_cells": ("graded", WRONG, 50),
    "shadows_given_helper": ("graded", WRONG, 50),
    "shadows_with_sitecustomize": ("graded", WRONG, 50),
    "cheats_only_under_nbgrader": ("graded", WRONG, 50),
    "cheats_outside_nbgrader": ("graded", "", 100),
    "reads_hidden_tests": ("graded", "", 100),
    "markup_in_notebook": ("graded", "", 100),
    "control_characters": ("graded", "answer() raised RuntimeError: red bell evil next", 50),
    "nan_in_probe_data": ("graded", "answer() is nan, expected 42", 50),
    "huge_npy_header": (
        "graded",
        f"{NO_DATA} (the array 'w' declares 800,000,000,000,000 bytes",
        50,
    ),
    "npz_bomb": ("graded", f"{NO_DATA} (its arrays unpack to 1,073,741,952 bytes", 50),
    "deep_json_probe_data": ("graded", f"{NO_DATA} (its JSON is nested more than 64 levels", 50),
    "object_array": ("graded", f"{NO_DATA} (the array 'w' has the dtype object", 50),
    "output_flood": ("graded", "", 100),
    "model_deep_json": ("graded", "nests more than 64 levels deep", 50),
    "model_wrong_strides": ("graded", "has a broken shape", 50),
    "model_type_swapped": ("graded", "in an unknown form", 50),
    "model_integer_parameter": ("graded", "stored as integers or booleans", 50),
}
"""None as the status: any (the notebook's own run may or may not end, the points may not)."""

FLAGGED = {
    "swallows_errors",
    "rewrites_later_cells",
    "cheats_only_under_nbgrader",
    "nan_in_probe_data",
    "huge_npy_header",
    "npz_bomb",
    "deep_json_probe_data",
    "object_array",
}
"""Kinds whose notebook tests passed where the same public check, run by the probe on the
handed-in code, failed, or whose probe data was poisoned. Not ``lenient_public_check``: its
notebook tests pass and the trusted checks fail, but so does nothing else (an honest mistake)."""
MAY_BE_FLAGGED = {"memory_across_processes", "memory_across_spawned_interpreters"}
"""Flagged when the memory cgroup stopped a child in the notebook and the notebook went on (its
test passed, the check with less memory failed); not when it stopped the kernel itself: which
process the kernel's OOM killer picks is not up to the grader."""

OUTPUT_CHECKS = {
    "writes_gradebook_and_others": "tampering refused",
    "searches_hidden_labels": "no hidden labels readable",
    "tries_network": "network unreachable",
    "writes_everywhere": "wrote nowhere outside its own folders",
    "snoops_proc": "proc shows only own processes",
    "snoops_proc_deeper": "proc holds nothing of the grader",
    "ipc_reaches_the_host": "host ipc unreachable",
}
"""What the hostile code printed in its notebook (root only: without root it reaches more)."""

ONLY = [kind for kind in os.environ.get("CORPUS_KINDS", "").split(",") if kind]
"""The kinds to grade (all when empty)."""
ID_COLLISIONS = () if ONLY else ("data", "x.hidden", "template.db", "job-0", "model-images", "out")
"""Good submissions under ids that name the grader's own folders and files."""

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]")


class _Elements(HTMLParser):
    """What a browser would run or load from a page: scripts with code, frames, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.in_script = tag == "script"
        if tag in ("iframe", "frame", "object", "embed"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or "javascript:" in (value or "").replace(" ", "").lower():
                self.found.append(f"<{tag} {name}={value}>")

    def handle_data(self, data: str) -> None:
        if self.in_script and "alert(" in data:
            self.found.append(f"<script>{data[:60]}")

    def handle_endtag(self, tag: str) -> None:
        self.in_script = False


def live_markup(page: str) -> list[str]:
    """Live markup a student could have planted in a page (nbconvert's own scripts pass)."""
    parser = _Elements()
    parser.feed(page)
    return parser.found


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts
    }


def _sysv_objects() -> dict[str, list[str]]:
    found = {}
    for kind in ("shm", "sem", "msg"):
        path = Path("/proc/sysvipc") / kind
        found[kind] = sorted(path.read_text().splitlines()[1:]) if path.exists() else []
    return found


class HostIpc:
    """A SysV shared-memory segment (zeros) and message queue on the host, under the key the
    hostile code looks for: after grading both must still exist, the segment still all zeros."""

    SIZE = 4096

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.shmat.restype = ctypes.c_void_p
        self.shm = self.libc.shmget(hostile.HOST_IPC_KEY, self.SIZE, 0o1600)
        self.msg = self.libc.msgget(hostile.HOST_IPC_KEY, 0o1600)
        assert self.shm >= 0 and self.msg >= 0, "the host's IPC objects could not be made"

    def untouched(self) -> bool:
        address = self.libc.shmat(self.shm, None, 0o10000)  # SHM_RDONLY
        if address in (None, ctypes.c_void_p(-1).value):  # the segment is gone
            return False
        content = ctypes.string_at(address, self.SIZE)
        self.libc.shmdt(ctypes.c_void_p(address))
        return content == bytes(self.SIZE) and self.libc.msgget(hostile.HOST_IPC_KEY, 0) == self.msg

    def remove(self) -> None:
        self.libc.shmctl(self.shm, 0, None)  # IPC_RMID
        self.libc.msgctl(self.msg, 0, None)


def sysv_objects_of_sandbox_users() -> list[str]:
    """System V IPC objects on this machine owned by a sandbox user id: a job's own IPC
    namespace ends with it, so there must be none (whoever left them, even a run before)."""
    found = []
    for kind in ("shm", "sem", "msg"):
        header, *rows = (Path("/proc/sysvipc") / kind).read_text().splitlines()
        uid_column = header.split().index("uid")
        for row in rows:
            key, ident, uid = *row.split()[:2], int(row.split()[uid_column])
            if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + 64:
                found.append(f"{kind} key {key} id {ident} of uid {uid}")
    return found


def marked_processes() -> list[str]:
    """Command lines on this machine that carry the corpus daemons' mark."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if hostile.DAEMON_MARK in command and "pytest" not in command:
                found.append(command)
    return found


def _escaped_files() -> list[str]:
    found = []
    for top in TRIED_FOLDERS:
        for folder, dirs, names in os.walk(top):
            if folder.startswith(("/proc", "/sys")) or folder.count("/") - top.count("/") >= 2:
                dirs[:] = []
            if hostile.ESCAPE_MARK in names:
                found.append(folder)
    return found


def _owned_by_sandbox(folder: Path) -> list[str]:
    return [
        str(p)
        for p in folder.rglob("*")
        if p.lstat().st_uid >= SANDBOX_UID_BASE and p.lstat().st_uid < SANDBOX_UID_BASE + 64
    ]


def _cgroup_leftovers() -> list[str]:
    return [
        str(folder)
        for hierarchy in support().cgroups.used()
        if hierarchy.base.is_dir()
        for folder in hierarchy.base.iterdir()
        if folder.is_dir() and folder.name.startswith(f"{os.getpid()}-")
    ]


@pytest.fixture(scope="module")
def graded_corpus(prepared_data_dir, tmp_path_factory):
    """The whole corpus, collected and graded once (jobs=2), with the machine's state before."""
    tmp_path = tmp_path_factory.mktemp("corpus")
    tmp_path.chmod(0o755)
    hostile.PWNED.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        repo = tmp_path / "repo"
        cb.make_exercise(repo)
        patch.setattr(course, "REPO_ROOT", repo)
        course_dir = tmp_path / "course"
        release.release(course_dir, ["exercise_08"], dist_dir=tmp_path / "dist")
        context = cb.corpus_context(tmp_path, course_dir, prepared_data_dir)
        canary = hostile.canary_path(context)
        canary.write_text("the grader must never write here")
        zips = tmp_path / "zips"
        zips.mkdir()
        kinds = cb.corpus(course_dir / "release" / "exercise_08", context, ONLY or None)
        for kind, content in kinds.items():
            cb.write_zip(content, zips / f"{kind}.zip")
        for student in ID_COLLISIONS:
            cb.write_zip(kinds["good"], zips / f"{student}.zip")
        collect.collect(course_dir, "exercise_08", [zips], id_pattern=r"^(?P<id>.+)\.zip$")
        host_ipc = HostIpc()
        try:
            patch.setenv("AUTOGRADER_CORPUS_SECRET", hostile.GRADER_SECRET)
            before = {
                "repo": _snapshot(repo),
                "data": _snapshot(prepared_data_dir),
                "canary": (canary.read_text(), canary.stat().st_uid, canary.stat().st_mode),
                "ipc": _sysv_objects(),
            }
            settings = GradeSettings(
                autograde_timeout_s=90,
                cell_timeout_s=20,
                autograde_memory_bytes=1536 * 2**20,
                autograde_disk_bytes=200 * 2**20,
                max_processes=128,
                probe_timeout_s=12,
                model_timeout_s=120,
                probe_memory_bytes=1024 * 2**20,
                data_dir=prepared_data_dir,
            )
            start = time.monotonic()
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                grade(course_dir, "exercise_08", jobs=3, settings=settings)
            seconds = time.monotonic() - start
            print(printed.getvalue())
            after = {
                "processes": marked_processes(),
                "printed": printed.getvalue(),
                "ipc": _sysv_objects(),  # before the check below attaches to the segment
                "host_ipc_untouched": host_ipc.untouched(),
            }
        finally:
            host_ipc.remove()
        csv_path = report(course_dir, "exercise_08")
        yield {
            "course": course_dir,
            "repo": repo,
            "canary": canary,
            "before": before,
            "after": after,
            "settings": settings,
            "csv": csv_path,
            "seconds": seconds,
            "tmp": tmp_path,
        }
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.slow
def test_every_kind_gets_the_points_it_deserves_with_one_clear_sentence(graded_corpus, capsys):
    assert set(EXPECTED) == set(cb.CHANGES)
    records = {r["student_id"]: r for r in read_results(graded_corpus["course"], "exercise_08")}
    table, wrong = [], []
    for kind, (status, words, total) in EXPECTED.items():
        if ONLY and kind not in ONLY:
            continue
        record = records[kind]
        table.append(f"| {kind} | {record['status']} | {record['total']:g} | {record['message']} |")
        allowed = status if isinstance(status, tuple) else (status,)
        if record["total"] != total or (status and record["status"] not in allowed):
            wrong.append((kind, record["status"], record["total"], record["message"]))
        elif words not in record["message"] or (not words and record["message"]):
            wrong.append((kind, record["status"], record["total"], record["message"]))
    with capsys.disabled():
        print(f"\ncorpus of {len(records)} graded in {graded_corpus['seconds']:.0f} s:")
        print("\n".join(table))
    assert wrong == []
    for student in ID_COLLISIONS:
        assert (records[student]["status"], records[student]["total"]) == ("graded", 100)
    flagged = {kind for kind, record in records.items() if record.get("flags")}
    expected = FLAGGED & set(ONLY) if ONLY else FLAGGED
    assert expected <= flagged <= expected | MAY_BE_FLAGGED


@pytest.mark.slow
def test_nothing_a_submission_started_is_alive_and_nothing_outside_the_course_changed(
    graded_corpus,
):
    assert graded_corpus["after"]["processes"] == []
    # Each worker counts the processes of its sandbox user id right before it clears it for the
    # next job, and grade names any it found: everything a job started must be gone by then (its
    # PID namespace and cgroup).
    printed = graded_corpus["after"]["printed"]
    records = read_results(graded_corpus["course"], "exercise_08")
    graded = sum(1 for record in records if record["status"] != "rejected")
    assert printed.count("] ") >= graded > 0 and "were still running" not in printed
    assert _cgroup_leftovers() == []
    assert not hostile.PWNED.exists()
    before = graded_corpus["before"]
    canary = graded_corpus["canary"]
    assert (canary.read_text(), canary.stat().st_uid, canary.stat().st_mode) == before["canary"]
    assert _snapshot(graded_corpus["repo"]) == before["repo"]
    assert graded_corpus["after"]["ipc"] == before["ipc"]
    assert sysv_objects_of_sandbox_users() == []
    assert graded_corpus["after"]["host_ipc_untouched"]
    assert _owned_by_sandbox(graded_corpus["tmp"]) == []
    if os.geteuid() == 0:
        assert not any(path.exists() for path in LITTER + HOST_LEFTOVERS)
        assert _escaped_files() == []


@pytest.mark.slow
def test_the_real_gradebook_holds_the_trusted_scores_and_nothing_the_sandbox_wrote(graded_corpus):
    from nbgrader.api import Gradebook

    records = {r["student_id"]: r for r in read_results(graded_corpus["course"], "exercise_08")}
    db = f"sqlite:///{graded_corpus['course'] / 'gradebook.db'}"
    with Gradebook(db, course.COURSE_ID) as gb:
        for kind in ("good", "gradebook_manual_score", "gradebook_trigger", "gradebook_rewriter"):
            if ONLY and kind not in ONLY:
                continue
            submission = gb.find_submission("exercise_08", kind)
            assert submission.score == records[kind]["total"], kind
            grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
            assert grades and all(grade.manual_score is None for grade in grades)


@pytest.mark.slow
def test_feedback_never_shows_hidden_tests_live_markup_or_control_characters(graded_corpus):
    course_dir = graded_corpus["course"]
    pages = list((course_dir / "feedback").rglob("*.html"))
    notebooks = list((course_dir / "autograded").rglob("*.ipynb"))
    assert len(pages) > len(ONLY or EXPECTED)
    for path in pages + notebooks:
        text = path.read_text()
        assert cb.HIDDEN_TEST_LINE not in text, path
        assert "value + 0 == 42" not in text, path
    for path in pages:
        assert live_markup(path.read_text()) == [], path
    assert not CONTROL.search(graded_corpus["csv"].read_text())
    if not ONLY or "markup_in_notebook" in ONLY:
        markup = course_dir / "feedback" / "markup_in_notebook" / "exercise_08" / "autoencoder.html"
        assert "md-script" in markup.read_text(), "the student's markup is shown, as text"
    if not ONLY or "control_characters" in ONLY:
        summary = course_dir / "feedback" / "control_characters" / "exercise_08" / "summary.html"
        assert not CONTROL.search(summary.read_text())


@pytest.mark.slow
def test_an_output_flood_gives_a_feedback_page_of_bounded_size(graded_corpus):
    if ONLY and "output_flood" not in ONLY:
        pytest.skip("output_flood not graded")
    course_dir = graded_corpus["course"]
    page = course_dir / "feedback" / "output_flood" / "exercise_08" / "autoencoder.html"
    assert page.stat().st_size < feedback.MAX_PAGE_BYTES + 2**20, f"{page.stat().st_size:,}"
    assert "cut for the feedback page" in page.read_text()


@pytest.mark.slow
@ROOT_ONLY
def test_hostile_code_reached_nothing_it_looked_for(graded_corpus):
    for kind, text in OUTPUT_CHECKS.items():
        if ONLY and kind not in ONLY:
            continue
        notebook = (
            graded_corpus["course"] / "autograded" / kind / "exercise_08" / "autoencoder.ipynb"
        )
        outputs = json.dumps(
            [c.get("outputs", []) for c in json.loads(notebook.read_text())["cells"]]
        )
        assert text in outputs, (kind, outputs[:2000])


@pytest.mark.slow
def test_grading_again_changes_neither_the_records_nor_the_csv(graded_corpus, capsys):
    course_dir = graded_corpus["course"]
    before = graded_corpus["csv"].read_bytes()
    grade(course_dir, "exercise_08", jobs=3, settings=graded_corpus["settings"])
    assert report(course_dir, "exercise_08").read_bytes() == before
    total = len(ONLY or EXPECTED) + len(ID_COLLISIONS)
    assert f"skipped {total} already graded" in capsys.readouterr().out
    with open(graded_corpus["csv"], newline="") as handle:
        assert len(list(csv.DictReader(handle))) == total
