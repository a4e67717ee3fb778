"""The grading engine under faults, with real processes: a real ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1 (tests/servers.py), the grader killed, the scheduler
killed or unreachable, a submission that takes its worker down every time, and the same batch on
SQLite and on a real PostgreSQL server. Each test is bounded in time; every server is stopped
by its process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import corpus_behaviour as cb
import pytest
from alembic.script import ScriptDirectory
from servers import dask_cluster, wait_until
from standin_course import collect_kinds as _collect_kinds
from standin_course import grade_settings as _settings

from autograder import course
from autograder.core.records import Status
from autograder.engine import grading_client, grading_spec
from autograder.grade import grade
from autograder.results import read_results
from autograder.store import Store
from autograder.store.store import MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

KINDS = ["good", "untouched", "model_missing", "model_untrained"]
EXPECTED = {"good": 100.0, "untouched": 0.0, "model-missing": 50.0, "model-untrained": 50.0}
"""The totals a clean run gives each kind (tests/corpus_behaviour.py)."""
SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1", "OMP_NUM_THREADS": "1"}

GRADE_SCRIPT = """
import sys
from pathlib import Path
from autograder import course
from autograder.cli import main
course.REPO_ROOT = Path(sys.argv[1])
sys.exit(main(sys.argv[2:]))
"""
"""``python -m autograder`` with the stand-in exercise as the repository's exercise."""


def _totals(course_dir: Path) -> dict[str, float]:
    return {r["student_id"]: r["total"] for r in read_results(course_dir, "exercise_08")}


def _one_row_each(course_dir: Path) -> list:
    rows = Store.for_course(course_dir).rows("exercise_08")
    students = [row.student_id for row in rows]
    assert sorted(students) == sorted(set(students)), f"a student has two rows: {students}"
    assert all(row.state.final for row in rows), [(r.student_id, r.state) for r in rows]
    return rows


def _grade_cli(course_dir: Path, data_dir: Path, *args: str, timeout: float = 600):
    env = {**os.environ, "AUTOGRADER_DATA_DIR": str(data_dir), "AUTOGRADER_PROBE_TIMEOUT_S": "30"}
    return subprocess.Popen(
        [sys.executable, "-c", GRADE_SCRIPT, str(course.REPO_ROOT), "grade", "exercise_08"]
        + ["--course-dir", str(course_dir), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_worker_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
    standin_course, models, prepared_data_dir, tmp_path
):
    _collect_kinds(standin_course, models, prepared_data_dir, KINDS)
    store = Store.for_course(standin_course)
    with dask_cluster(2, scheduler_env=SCHEDULER_ENV, tmp_dir=tmp_path) as cluster:
        with cluster.client() as client:
            names = {
                address: info["name"]
                for address, info in client.scheduler_info(n_workers=-1)["workers"].items()
            }
        failure: list[BaseException] = []

        def run() -> None:
            try:
                grade(
                    standin_course,
                    "exercise_08",
                    settings=_settings(prepared_data_dir),
                    scheduler=cluster.address,
                )
            except BaseException as error:
                failure.append(error)

        grader = threading.Thread(target=run)
        grader.start()

        def running_row():
            rows = store.rows("exercise_08")
            return next((r for r in rows if r.state is Status.RUNNING and r.holder), None)

        victim = wait_until(running_row, 300, "a submission being graded")
        address = victim.holder.rsplit("(", 1)[1].rstrip(")")
        worker = next(w for w in cluster.workers if w.worker_name == names[address])
        worker.kill(signal.SIGKILL)
        grader.join(timeout=600)
        assert not grader.is_alive(), "grade did not finish after a worker was killed"
    assert not failure, failure
    rows = _one_row_each(standin_course)
    assert _totals(standin_course) == EXPECTED
    again = next(r for r in rows if r.id == victim.id)
    assert again.tries >= 2, "the killed worker's submission was not taken up again"


def test_the_scheduler_killed_mid_batch_stops_grade_with_one_sentence_and_the_next_run_finishes(
    standin_course, models, prepared_data_dir, tmp_path
):
    _collect_kinds(standin_course, models, prepared_data_dir, KINDS)
    store = Store.for_course(standin_course)
    with dask_cluster(2, scheduler_env=SCHEDULER_ENV, tmp_dir=tmp_path) as cluster:
        process = _grade_cli(standin_course, prepared_data_dir, "--scheduler", cluster.address)
        try:
            wait_until(
                lambda: any(r.state.final for r in store.rows("exercise_08")),
                300,
                "a first graded submission",
            )
            cluster.scheduler.kill(signal.SIGKILL)
            out, err = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert process.returncode == 1, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "lost the Dask scheduler at tcp://127.0.0.1:" in lines[0], err
    finished_before = {r.student_id: r.finished for r in store.rows("exercise_08") if r.finished}
    assert 0 < len(finished_before) < len(KINDS) or len(finished_before) == len(KINDS)

    with dask_cluster(2, scheduler_env=SCHEDULER_ENV, tmp_dir=tmp_path) as cluster:
        grade(
            standin_course,
            "exercise_08",
            settings=_settings(prepared_data_dir),
            scheduler=cluster.address,
        )
    rows = _one_row_each(standin_course)
    assert _totals(standin_course) == EXPECTED
    for row in rows:  # what was graded before the scheduler died was not graded again
        if row.student_id in finished_before:
            assert row.finished == finished_before[row.student_id]


def test_an_unreachable_scheduler_is_one_sentence_and_nothing_is_written(
    standin_course, models, prepared_data_dir
):
    from servers import free_port

    _collect_kinds(standin_course, models, prepared_data_dir, ["good"])
    gradebook = (standin_course / "gradebook.db").read_bytes()
    address = f"tcp://127.0.0.1:{free_port()}"
    process = _grade_cli(standin_course, prepared_data_dir, "--scheduler", address)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err.strip() == (
        f"error: cannot reach the Dask scheduler at {address} (OSError): start it or leave out "
        "--scheduler."
    ), err
    assert not (standin_course / "grading.sqlite").exists()
    assert (standin_course / "gradebook.db").read_bytes() == gradebook


GRADER_CRASH = '''

_REAL_JUDGE = judge


def judge(check, data, context):
    """Test-only grader bug: the answer 666 makes the grader itself allocate without bound,
    as a crash of the grader triggered by a submission's data would."""
    if data.get("value") == 666:
        import numpy

        hog = [numpy.ones(2**27) for _ in range(200)]  # 1 GiB at a time, 200 GiB in all
        return False, f"unreachable {len(hog)}"
    return _REAL_JUDGE(check, data, context)
'''


def test_a_submission_that_takes_its_worker_down_every_time_ends_as_one_error_row(
    standin_course, models, prepared_data_dir
):
    """Dask's own limits bound it: the worker's memory limit (its nanny stops it), the
    scheduler's allowed-failures (from ``tries``); the rest of the batch is graded."""
    verdicts = course.REPO_ROOT / "exercise_08" / "grading" / "verdicts.py"
    verdicts.write_text(verdicts.read_text() + GRADER_CRASH)
    zips = standin_course.parent / "zips"
    zips.mkdir()
    release_dir = standin_course / "release" / "exercise_08"
    files = cb.good_files(release_dir, models["good"])
    files["exercise_code/answer.py"] = b"def answer():\n    return 666\n"
    cb.write_zip(files, zips / "crasher.zip")
    _collect_kinds(standin_course, models, prepared_data_dir, ["good", "untouched"])
    from autograder import collect

    collect.collect(standin_course, "exercise_08", [zips])
    settings = _settings(prepared_data_dir)
    from dataclasses import replace

    settings = replace(settings, grader_memory_bytes=3 * 2**30, tries=2)
    started = time.monotonic()
    grade(standin_course, "exercise_08", jobs=2, settings=settings)
    assert time.monotonic() - started < 900
    rows = {row.student_id: row for row in _one_row_each(standin_course)}
    crasher = rows["crasher"]
    assert crasher.state is Status.ERROR and crasher.tries == 2, crasher
    assert "stopped the grading process 2 times" in crasher.record["message"]
    assert not crasher.record.get("retryable")
    assert _totals(standin_course) == {"crasher": 0.0, "good": 100.0, "untouched": 0.0}


def test_the_embedded_clusters_workers_fork_from_one_warm_parent_of_the_grader(
    standin_course, models, prepared_data_dir
):
    """One warm parent per machine (torch and the rest imported once, not once per worker),
    owned by the grading process itself and stopped with its cluster (that a worker which dies
    takes only its own jobs with it: tests/test_sandbox.py)."""
    _collect_kinds(standin_course, models, prepared_data_dir, ["good"])
    settings = _settings(prepared_data_dir)
    spec = grading_spec(standin_course, "exercise_08", settings)
    with grading_client(None, 2, settings, prepare=[spec], share_warm_parent=True) as client:
        client.wait_for_workers(2, timeout=120)
        pids = client.run(lambda dask_worker: _warm_parent_pid(dask_worker, spec))
        assert len(pids) == 2 and len(set(pids.values())) == 1, pids
        (pid,) = set(pids.values())
        assert _parent_of(pid) == os.getpid()  # the grader's, not a worker's
    assert not Path(f"/proc/{pid}").exists()  # stopped with the cluster


def _warm_parent_pid(dask_worker, spec) -> int | None:
    from autograder.engine.plugin import PLUGIN_NAME

    warm = dask_worker.plugins[PLUGIN_NAME].workspace(spec).warm
    warm.ready.wait(120)
    return warm.pid


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_same_batch_gives_the_same_rows_on_sqlite_and_on_a_real_postgresql(
    standin_course, models, prepared_data_dir, postgres_url, capsys
):
    kinds = ["good", "untouched", "model_missing"]
    _collect_kinds(standin_course, models, prepared_data_dir, kinds)
    settings = _settings(prepared_data_dir)
    grade(standin_course, "exercise_08", jobs=2, settings=settings)
    grade(standin_course, "exercise_08", jobs=2, settings=settings, database=postgres_url)
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in capsys.readouterr().out, "the database password was printed"

    def view(store: Store) -> list[tuple]:
        return sorted(
            (
                r.student_id,
                r.submission_sha256,
                r.grader_version,
                r.state,
                r.tries,
                r.record["total"],
                r.record["message"],
                [(p["item"], p["score"]) for p in r.record["details"]],
            )
            for r in store.rows("exercise_08")
        )

    sqlite, postgres = Store.for_course(standin_course), Store(postgres_url)
    assert postgres.engine.dialect.name == "postgresql"
    assert view(postgres) == view(sqlite)
    assert len(view(postgres)) == len(kinds)
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert postgres.revision() == sqlite.revision() == head
