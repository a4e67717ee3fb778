"""grade end to end on the stand-in exercise: the gradebook holds the trusted grade, a killed run
resumes, a slot's user id is clean before it is reused, and grading works without root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corpus_behaviour as cb
import hostile_code as hostile
import pytest
from standin_course import collect_kinds as _collect_kinds
from standin_course import grade_settings as _settings

from autograder import collect, course, release
from autograder.core.errors import AutograderError
from autograder.grade import grade
from autograder.results import read_result, read_results
from autograder.store import Store

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_gradebook_and_nbgrader_export_hold_the_whole_trusted_grade(
    standin_course, models, prepared_data_dir, capsys
):
    from nbgrader.api import Gradebook

    _collect_kinds(
        standin_course, models, prepared_data_dir, ["good", "model_missing", "untouched"]
    )
    instructor = 65534  # the course belongs to an ordinary user; grade runs as root
    for path in [standin_course, *standin_course.rglob("*")]:
        os.lchown(path, instructor, instructor)
    grade(standin_course, "exercise_08", settings=_settings(prepared_data_dir))
    if os.geteuid() == 0:  # what grade wrote is the instructor's again (report runs as them)
        others = [p for p in standin_course.rglob("*") if p.lstat().st_uid != instructor]
        assert others == []

    good = read_result(standin_course, "exercise_08", "good")
    assert (good["status"], good["tests_score"], good["hidden_score"], good["total"]) == (
        "graded",
        50.0,
        50.0,
        100.0,
    )
    assert good["hidden_accuracy"] > 0.7 and good["message"] == ""
    # The public part of the hidden set (shown before a deadline) is not the graded part.
    assert good["public_accuracy"] > 0.7 and good["public_accuracy"] != good["hidden_accuracy"]
    missing = read_result(standin_course, "exercise_08", "model-missing")
    assert missing["total"] == 50.0 and "No models/classifier.pt2" in missing["message"]
    with Gradebook(f"sqlite:///{standin_course / 'gradebook.db'}", course.COURSE_ID) as gb:
        scores = {s: gb.find_submission("exercise_08", s).score for s in ("good", "model-missing")}
    assert scores == {"good": 100.0, "model-missing": 50.0}
    export = standin_course.parent / "export.csv"
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", "--to", str(export)],
        cwd=standin_course,
        check=True,
        capture_output=True,
    )
    exported = {
        line.split(",")[3]: line.split(",")[9] for line in export.read_text().splitlines()[1:]
    }
    assert exported == {"good": "100.0", "model-missing": "50.0", "untouched": "0.0"}
    before = Store.for_course(standin_course).rows("exercise_08")

    grade(standin_course, "exercise_08", settings=_settings(prepared_data_dir))

    out = capsys.readouterr().out
    assert "3 of 3 submissions of exercise_08 are already graded; grading the other 0." in out
    assert "Graded 0 and skipped 3" in out
    assert Store.for_course(standin_course).rows("exercise_08") == before


def test_grade_refuses_a_folder_that_is_not_a_course_and_creates_nothing(tmp_path):
    mistyped = tmp_path / "cuorse"
    with pytest.raises(AutograderError, match="does not exist: check --course-dir"):
        grade(mistyped, "exercise_08")
    assert not mistyped.exists()


def test_grading_a_student_whose_upload_was_rejected_says_why_and_what_to_do(
    standin_course, capsys
):
    uploads = standin_course.parent / "uploads"
    uploads.mkdir()
    (uploads / "carol.zip").write_bytes(b"not a zip at all")
    collect.collect(standin_course, "exercise_08", [uploads])
    capsys.readouterr()
    grade(standin_course, "exercise_08", students=["carol"])
    out = capsys.readouterr().out
    assert "carol: the upload was rejected at collect (" in out
    assert "collect a corrected zip, then grade again." in out


def test_a_slot_is_clean_before_its_user_id_runs_the_next_job_at_one_job(
    standin_course, models, prepared_data_dir, capsys
):
    """At --jobs 1 every submission reuses the same user id: daemons of one must be gone before
    the next starts (the worker counts them right before its own clearing and the grade command
    names any it found), and later students keep their points."""
    kinds = [
        "aa_saboteur_of_the_next_slot",
        "setsid_daemon",
        "double_fork_nohup",
        "fork_bomb",
        "good",
    ]
    _collect_kinds(standin_course, models, prepared_data_dir, kinds)
    grade(standin_course, "exercise_08", jobs=1, settings=_settings(prepared_data_dir))

    out = capsys.readouterr().out
    records = {r["student_id"]: r for r in read_results(standin_course, "exercise_08")}
    assert records["good"]["total"] == 100 and records["setsid-daemon"]["total"] == 100
    if os.geteuid() == 0:
        assert out.count("[") >= len(kinds) and "were still running" not in out, out
    assert _marked() == []


def _marked() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if hostile.DAEMON_MARK.encode() in command and b"pytest" not in command:
                found.append(command.decode(errors="replace"))
    return found


KILL_SCRIPT = """
import sys
from pathlib import Path
from autograder import course
from autograder.core.errors import AutograderError
from autograder.grade import GradeSettings, grade
course.REPO_ROOT = Path(sys.argv[1])
settings = GradeSettings(autograde_timeout_s=120, cell_timeout_s=30, probe_timeout_s=30,
                         data_dir=Path(sys.argv[3]))
grade(Path(sys.argv[2]), "exercise_08", jobs=int(sys.argv[4]), settings=settings)
"""


def test_grade_killed_halfway_resumes_without_losing_or_doubling_anything(
    standin_course, models, prepared_data_dir, capsys
):
    from nbgrader.api import Gradebook

    kinds = ["good", "model_missing", "notebook_not_json", "model_untrained"]
    _collect_kinds(standin_course, models, prepared_data_dir, kinds)
    store = Store.for_course(standin_course)

    def graded() -> set[str]:
        return {row.student_id for row in store.rows("exercise_08") if row.state.final}

    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(course.REPO_ROOT), str(standin_course)]
        + [str(prepared_data_dir), "1"],
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not graded():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, 9)
    process.wait()
    graded_before_kill = graded()
    assert 0 < len(graded_before_kill) < len(kinds)
    left_running = [row for row in store.rows("exercise_08") if not row.state.final]
    assert left_running, "the killed run left no row queued or running"

    grade(standin_course, "exercise_08", settings=_settings(prepared_data_dir))

    out = capsys.readouterr().out
    assert f"{len(graded_before_kill)} of {len(kinds)} submissions" in out
    for student in graded_before_kill:
        assert f"] {student}:" not in out, f"{student} was graded twice"
    rows = store.rows("exercise_08")
    assert sorted(row.student_id for row in rows) == sorted(k.replace("_", "-") for k in kinds)
    assert all(row.state.final for row in rows)
    records = {r["student_id"]: r for r in read_results(standin_course, "exercise_08")}
    assert sorted(records) == sorted(k.replace("_", "-") for k in kinds)
    assert records["good"]["total"] == 100.0
    assert records["notebook-not-json"]["status"] == "error"
    assert records["model-untrained"]["hidden_score"] == 0.0
    with Gradebook(f"sqlite:///{standin_course / 'gradebook.db'}", course.COURSE_ID) as gb:
        submissions = gb.find_assignment("exercise_08").submissions
        assert sorted(s.student.id for s in submissions) == sorted(records)
    stale = [
        path
        for pattern in ("autograder-grade-*", "autograder-zygote-*")
        for path in Path(tempfile.gettempdir()).glob(pattern)
        if path.name.split("-")[2].isdigit()
        and not Path(f"/proc/{path.name.split('-')[2]}").exists()
    ]
    assert stale == [], "the killed run's work folders or warm parents' homes were not removed"


AS_USER = """
set -e
pyenv=$(mktemp -d) checkout=$(mktemp -d)
mount --bind /root/.pyenv "$pyenv"
mount --bind "$CHECKOUT" "$checkout"
for closed in /root $CLOSED_ANCESTOR; do mount -t tmpfs -o mode=755 tmpfs "$closed"; done
mkdir -p /root/.pyenv "$CHECKOUT"
mount --bind "$pyenv" /root/.pyenv
mount --bind "$checkout" "$CHECKOUT"
exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
"""
"""Run "$@" as nobody in a mount namespace where pyenv's Python under /root and this checkout
(wherever it was cloned, e.g. under a 0700 ``mktemp -d`` folder) are reachable."""


def _closed_ancestor(path: Path) -> str:
    """The topmost folder above ``path`` that other users cannot enter ("" if none)."""
    closed = [a for a in path.parents if a != Path("/") and not a.stat().st_mode & 0o001]
    return str(closed[-1]) if closed else ""


@pytest.fixture
def open_course(monkeypatch):
    """The stand-in course in a folder an ordinary user can reach (pytest's is root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="autograder-user-test-"))
    folder.chmod(0o755)
    repo = folder / "repo"
    cb.make_exercise(repo)
    monkeypatch.setattr(course, "REPO_ROOT", repo)
    course_dir = folder / "course"
    release.release(course_dir, ["exercise_08"], dist_dir=folder / "dist")
    yield course_dir
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the test switches to the user nobody")
def test_grading_without_root_works_and_says_once_what_is_not_isolated(
    open_course, models, prepared_data_dir
):
    """An instructor's laptop: grade runs as an ordinary user (nobody here, in a mount namespace
    where pyenv's Python under /root is reachable), with user namespaces and no cgroups."""
    folder = open_course.parent
    _collect_kinds(open_course, models, prepared_data_dir, ["good", "untouched", "setsid_daemon"])
    data = folder / "data"
    shutil.copytree(prepared_data_dir, data, ignore=shutil.ignore_patterns("cache"))
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, 65534, 65534)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", AS_USER, "as-user"]
        + [sys.executable, "-c", KILL_SCRIPT, str(course.REPO_ROOT), str(open_course)]
        + [str(data), "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "HOME": str(folder),
            "CHECKOUT": str(ROOT),
            "CLOSED_ANCESTOR": _closed_ancestor(ROOT),
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Warning: grading is not fully isolated here") == 1
    assert "your own user id" in done.stdout
    records = {r["student_id"]: r for r in read_results(open_course, "exercise_08")}
    totals = {student: record["total"] for student, record in records.items()}
    assert totals == {"good": 100, "untouched": 0, "setsid-daemon": 100}, done.stdout
    assert _marked() == []
    notebook = open_course / "autograded" / "good" / "exercise_08" / "autoencoder.ipynb"
    assert json.loads(notebook.read_text())["cells"]


def test_a_submissions_sandboxes_run_in_lanes_and_its_verdicts_stay_the_same(
    standin_course, models, prepared_data_dir
):
    """``check_lanes`` sandboxes of one submission's checks run at once; every verdict is still
    decided in one thread (judges seed torch's global generator), so the record is the same
    as with one lane."""
    from dataclasses import replace

    from autograder.engine import grading_spec
    from autograder.grading import Workspace, grade_submission, submission_sha256
    from autograder.sandbox import reserved_uids

    _collect_kinds(standin_course, models, prepared_data_dir, ["good", "exercise_code_raises"])
    outcomes = {}
    for lanes in (1, 3):
        settings = replace(_settings(prepared_data_dir), check_lanes=lanes)
        workspace = Workspace.prepare(grading_spec(standin_course, "exercise_08", settings))
        counter = _SandboxCounter(workspace.warm.run)
        workspace.warm.run = counter.run
        try:
            with reserved_uids(1) as (uid,):
                records = [
                    grade_submission(
                        workspace,
                        student,
                        submission_sha256(standin_course, "exercise_08", student),
                        uid,
                    )
                    for student in ("good", "exercise-code-raises")
                ]
        finally:
            workspace.close()
        parts = [[(p.item, p.score, p.reason) for p in r.details] for r in records]
        outcomes[lanes] = counter.peak, parts
    assert outcomes[1][0] == 1 and outcomes[3][0] >= 2
    assert outcomes[1][1] == outcomes[3][1]
    good, broken = outcomes[3][1]
    assert sum(score for _, score, _ in good) > sum(score for _, score, _ in broken)


class _SandboxCounter:
    """Wraps ``WarmParent.run``: the most check sandboxes (not the notebook run) at once."""

    def __init__(self, run) -> None:
        import threading

        self._run, self._lock = run, threading.Lock()
        self.running = self.peak = 0

    def run(self, payload, *args, **kwargs):
        if payload == "notebook":  # its own thread beside the checks, not a lane
            return self._run(payload, *args, **kwargs)
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return self._run(payload, *args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1
