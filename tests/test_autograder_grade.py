"""grade: the sandbox, the capping of scores, and a graded stand-in submission end to end."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corpus_behaviour as cb
import numpy as np
import pytest

from autograder import collect, course, hidden_check, release
from autograder.exercise_modules import exercise_code_module
from autograder.grade import GradeSettings, grade
from autograder.gradebook import read_capped_scores
from autograder.hidden_check import check_hidden_accuracy
from autograder.results import read_result, read_results
from autograder.sandbox import Sandbox, reserved_uids, run_sandboxed, scrubbed_env

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="full isolation needs root")


@pytest.fixture
def open_tmp():
    """A temporary folder that other users may enter (pytest's own is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="autograder-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@ROOT_ONLY
def test_sandbox_drops_to_its_own_user_without_network_and_hides_paths(open_tmp):
    tmp_path = open_tmp
    secret = tmp_path / "secret"
    secret.write_text("label")
    secret.chmod(0o600)
    hidden = tmp_path / "hidden_dir"
    hidden.mkdir()
    (hidden / "inside").write_text("x")
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    script = (
        "import os, socket\n"
        "print('uid', os.getuid())\n"
        f"print('hidden', os.listdir({str(hidden)!r}))\n"
        "try:\n"
        f"    open({str(secret)!r}).read(); print('secret READ')\n"
        "except OSError: print('secret refused')\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2); print('network REACHED')\n"
        "except OSError: print('network refused')\n"
        "open('/tmp/autograder-test-litter', 'w').write('x')\n"
    )
    with reserved_uids(1) as (uid,):
        sandbox = Sandbox(
            60, 2**31, uid=uid, hidden_paths=(str(hidden),), keep_paths=(str(tmp_path),)
        )
        outcome = run_sandboxed(
            [sys.executable, "-c", script], sandbox, work, scrubbed_env(work), tmp_path / "log"
        )
    assert outcome.returncode == 0, outcome.log
    assert f"uid {uid}" in outcome.log
    assert "hidden []" in outcome.log
    assert "secret refused" in outcome.log and "network refused" in outcome.log
    assert not Path("/tmp/autograder-test-litter").exists()


PROBE_RULES = """
import os, socket
report = ['uid %d' % os.getuid(), 'hidden %s' % os.listdir(HIDDEN)]
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2)
    report.append('network REACHED')
except OSError:
    report.append('network refused')
with open('probe.txt', 'w') as handle:
    handle.write(chr(10).join(report))
"""


@ROOT_ONLY
def test_hidden_check_workers_forked_from_the_warm_parent_are_sandboxed_too(open_tmp):
    hidden = open_tmp / "hidden_dir"
    hidden.mkdir()
    (hidden / "labels").write_text("secret")
    rules = open_tmp / "probe_rules.py"
    rules.write_text(f"HIDDEN = {str(hidden)!r}\n" + PROBE_RULES)
    model = open_tmp / "classifier.pt2"
    model.write_bytes(b"not a model")
    images = np.zeros((3, 1, 28, 28), dtype=np.float32)
    with reserved_uids(1) as (uid,):
        keep = (str(open_tmp),)
        sandbox = Sandbox(60, 6 * 2**30, uid=uid, hidden_paths=(str(hidden),), keep_paths=keep)
        work = open_tmp / "work"
        check_hidden_accuracy(model, rules, images, open_tmp, work, sandbox, 50, 0.55)
    hidden_check.shutdown()
    assert (work / "probe.txt").read_text().splitlines() == [
        f"uid {uid}",
        "hidden []",
        "network refused",
    ]


def test_sandbox_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "survivor"
    script = f"sleep 3 && touch {marker} & sleep 60"
    outcome = run_sandboxed(
        ["bash", "-c", script],
        Sandbox(timeout_s=1, memory_bytes=2**31, uid=None),
        tmp_path,
        scrubbed_env(tmp_path),
        tmp_path / "log",
    )
    time.sleep(4)
    assert outcome.timed_out and not marker.exists()


@pytest.mark.parametrize(
    "writer, limits, expected",
    [
        (
            "open(f'big{i}', 'wb').write(b'x' * 2**22)",
            {"max_disk_bytes": 20 * 2**20},
            "20 MB of files",
        ),
        ("open(f'small{i}', 'w').close()", {"max_disk_entries": 300}, "300 files"),
    ],
)
def test_sandbox_disk_quota_stops_the_command_and_says_what_it_wrote(
    tmp_path, writer, limits, expected
):
    work = tmp_path / "work"
    work.mkdir()
    script = (
        f"import itertools, time\nfor i in itertools.count():\n    {writer}\n    time.sleep(0.001)"
    )
    outcome = run_sandboxed(
        [sys.executable, "-c", script],
        Sandbox(timeout_s=60, memory_bytes=2**31, uid=None, disk_paths=(str(work),), **limits),
        work,
        scrubbed_env(tmp_path),
        tmp_path / "log",
    )
    assert outcome.over_disk_quota == f"more than {expected}"
    assert not outcome.timed_out and outcome.seconds < 30
    assert outcome.returncode < 0, "the writer was killed"


def test_a_command_within_the_disk_quota_runs_to_its_end(tmp_path):
    outcome = run_sandboxed(
        [sys.executable, "-c", "open('f', 'wb').write(b'x' * 2**20)"],
        Sandbox(timeout_s=60, memory_bytes=2**31, uid=None, disk_paths=(str(tmp_path),)),
        tmp_path,
        scrubbed_env(tmp_path),
        tmp_path / "log",
    )
    assert (outcome.returncode, outcome.over_disk_quota, outcome.timed_out) == (0, "", False)


@pytest.mark.filterwarnings("ignore:Object of type")
def test_scores_from_the_throwaway_gradebook_are_capped_at_the_source_points(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    # nbgrader runs the `alembic` command of the environment to create a gradebook.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    db = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{db}") as gb:
        gb.add_assignment("exercise_08")
        gb.add_notebook("autoencoder", "exercise_08")
        for name in ("test_a", "test_b", "test_c"):
            gb.add_grade_cell(name, "autoencoder", "exercise_08", max_score=25, cell_type="code")
        gb.add_student("s1")
        gb.add_submission("exercise_08", "s1")
    connection = sqlite3.connect(db)
    for name, score in (("test_a", 1000.0), ("test_b", -5.0), ("test_c", 12.5)):
        connection.execute(
            "UPDATE grade SET auto_score = ? WHERE cell_id = "
            "(SELECT id FROM base_cell WHERE name = ? AND type = 'GradeCell')",
            (score, name),
        )
    connection.commit()
    connection.close()
    cells = {("autoencoder", "test_a"): 25.0, ("autoencoder", "test_b"): 25.0}
    cells[("autoencoder", "test_c")] = 25.0
    cells[("autoencoder", "not_in_db")] = 10.0

    scores = read_capped_scores(db, cells)

    assert scores == {
        ("autoencoder", "test_a"): 25.0,
        ("autoencoder", "test_b"): 0.0,
        ("autoencoder", "test_c"): 12.5,
        ("autoencoder", "not_in_db"): 0.0,
    }


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def models(prepared_data_dir, tmp_path_factory) -> dict[str, Path]:
    files = exercise_code_module("exercise_08", "mnist_files")
    raw = prepared_data_dir / "MNIST" / "raw"
    images = files.read_idx(raw / "train-images-idx3-ubyte")
    labels = files.read_idx(raw / "train-labels-idx1-ubyte")
    return cb.make_models(tmp_path_factory.mktemp("models"), images, labels)


@pytest.fixture
def standin_course(tmp_path, monkeypatch) -> Path:
    """A course with the released stand-in exercise as ``exercise_08``."""
    repo = tmp_path / "repo"
    cb.make_exercise(repo)
    monkeypatch.setattr(course, "REPO_ROOT", repo)
    course_dir = tmp_path / "course"
    release.release(course_dir, ["exercise_08"], dist_dir=tmp_path / "dist")
    return course_dir


def _settings(data_dir: Path) -> GradeSettings:
    return GradeSettings(
        autograde_timeout_s=120,
        cell_timeout_s=30,
        autograde_memory_bytes=4 * 2**30,
        data_dir=data_dir,
    )


def _collect_kinds(course_dir: Path, models: dict, data_dir: Path, kinds: list[str]) -> None:
    zips = course_dir.parent / "zips"
    zips.mkdir(exist_ok=True)
    context = {"models": models, "course_dir": course_dir, "data_dir": data_dir}
    release_dir = course_dir / "release" / "exercise_08"
    for kind, files in cb.corpus(release_dir, context, kinds).items():
        cb.write_zip(files, zips / f"{kind.replace('_', '-')}.zip")
    collect.collect(course_dir, "exercise_08", [zips])


@pytest.mark.slow
def test_good_submission_gets_full_marks_in_the_real_gradebook_and_a_rerun_changes_nothing(
    standin_course, models, prepared_data_dir, capsys
):
    from nbgrader.api import Gradebook

    _collect_kinds(standin_course, models, prepared_data_dir, ["good", "model_missing"])
    # A name as collect keeps it from an old zip tool (cp437): grading copes with any Unicode name.
    good_dir = course.submitted_dir(standin_course, "exercise_08", "good")
    (good_dir / "L\u00f7sung notes.txt").write_text("notes")
    grade(standin_course, "exercise_08", settings=_settings(prepared_data_dir))

    good = read_result(standin_course, "exercise_08", "good")
    assert (good["status"], good["tests_score"], good["hidden_score"], good["total"]) == (
        "graded",
        50.0,
        50.0,
        100.0,
    )
    assert good["hidden_accuracy"] > 0.8 and good["message"] == ""
    missing = read_result(standin_course, "exercise_08", "model-missing")
    assert missing["total"] == 50.0 and "No models/classifier.pt2" in missing["message"]
    with Gradebook(f"sqlite:///{standin_course / 'gradebook.db'}", course.COURSE_ID) as gb:
        assert gb.find_submission("exercise_08", "good").score == 50.0
    notebook = standin_course / "autograded" / "good" / "exercise_08" / "autoencoder.ipynb"
    assert json.loads(notebook.read_text())["cells"]
    before = {p.name: p.read_bytes() for p in (standin_course / "results/exercise_08").iterdir()}

    grade(standin_course, "exercise_08", settings=_settings(prepared_data_dir))

    assert "good: already graded (graded), skipped." in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in (standin_course / "results/exercise_08").iterdir()}
    assert after == before


KILL_SCRIPT = """
import sys
from pathlib import Path
from autograder import course
from autograder.grade import GradeSettings, grade
course.REPO_ROOT = Path(sys.argv[1])
settings = GradeSettings(autograde_timeout_s=120, cell_timeout_s=30,
                         autograde_memory_bytes=4 * 2**30, data_dir=Path(sys.argv[3]))
grade(Path(sys.argv[2]), "exercise_08", settings=settings)
"""


@pytest.mark.slow
def test_grade_killed_halfway_resumes_without_losing_or_doubling_anything(
    standin_course, models, prepared_data_dir, capsys
):
    from nbgrader.api import Gradebook

    kinds = ["good", "model_missing", "notebook_not_json", "model_untrained"]
    _collect_kinds(standin_course, models, prepared_data_dir, kinds)
    results = standin_course / "results" / "exercise_08"
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(course.REPO_ROOT), str(standin_course)]
        + [str(prepared_data_dir)],
        cwd=Path(__file__).resolve().parents[1],
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (results.is_dir() and list(results.glob("*.json"))):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, 9)
    process.wait()
    graded_before_kill = {p.stem for p in results.glob("*.json")}
    assert 0 < len(graded_before_kill) < len(kinds)

    grade(standin_course, "exercise_08", settings=_settings(prepared_data_dir))

    out = capsys.readouterr().out
    for student in graded_before_kill:
        assert f"{student}: already graded" in out
    records = {r["student_id"]: r for r in read_results(standin_course, "exercise_08")}
    assert sorted(records) == sorted(k.replace("_", "-") for k in kinds)
    assert records["good"]["total"] == 100.0
    assert records["notebook-not-json"]["status"] == "error"
    assert records["model-untrained"]["hidden_score"] == 0.0
    with Gradebook(f"sqlite:///{standin_course / 'gradebook.db'}", course.COURSE_ID) as gb:
        submissions = gb.find_assignment("exercise_08").submissions
        assert sorted(s.student.id for s in submissions) == sorted(records)
    assert not list(Path(tempfile.gettempdir()).glob(f"autograder-grade-{process.pid}-*"))
