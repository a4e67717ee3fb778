"""The submission service under faults, with real processes on 127.0.0.1: the service killed
with SIGKILL while uploads are queued and running, then started again (every upload graded,
none twice, none lost); a Dask worker killed mid-grade (the student sees one result); uploads
after the deadline (403, one sentence). Bounded in count and time."""

from __future__ import annotations

import signal

import pytest
from servers import dask_cluster, wait_until
from service_support import (
    ASSIGNMENT,
    FINAL,
    client,
    make_service_course,
    running_service,
    upload,
    wait_final,
)

from autograder.core.records import Status
from autograder.store.uploads import Uploads

pytestmark = pytest.mark.slow

PLAN = [
    ("alice", "good"),
    ("bob", "untouched"),
    ("carol", "model_missing"),
    ("alice", "untouched"),
    ("bob", "model_missing"),
    ("carol", "good"),
]
"""Six uploads of three students (one grading row each)."""


@pytest.fixture
def made(tmp_path, models, prepared_data_dir):
    return make_service_course(
        tmp_path / "c", models, prepared_data_dir, ["good", "untouched", "model_missing"]
    )


def test_the_service_killed_with_sigkill_loses_no_upload_and_grades_none_twice(made, tmp_path):
    store = made.store()
    uploads = Uploads(store)
    with running_service(made, tmp_path, "--jobs", "1") as server:
        ids = []
        for student, kind in PLAN:
            with client(server.url, made.tokens[student]) as http:
                answer = upload(http, made.zips[kind])
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])

        def one_running_and_some_queued():
            states = [uploads.get(i).grading.state for i in ids]
            return Status.RUNNING in states and Status.QUEUED in states

        wait_until(one_running_and_some_queued, 240, "a running and a queued upload")
        server.kill(signal.SIGKILL)  # the uvicorn process, then what it started
        server.signal_group(signal.SIGKILL)
        wait_until(lambda: server.popen.poll() is not None, 30, "the service gone")
    before = {i: uploads.get(i).grading for i in ids}
    assert any(not row.state.final for row in before.values())
    assert any(row.state is Status.RUNNING for row in before.values())
    done_before = {i: row.finished for i, row in before.items() if row.state.final}
    states = [row.state.value for row in before.values()]
    print(f"at the SIGKILL: {', '.join(f'{states.count(s)} {s}' for s in sorted(set(states)))}")

    with running_service(made, tmp_path, "--jobs", "1", name="service-again") as server:
        results = {}
        for (student, _), upload_id in zip(PLAN, ids, strict=True):
            with client(server.url, made.tokens[student]) as http:
                results[upload_id] = wait_final(http, upload_id, 400)
    assert all(r["status"] in FINAL for r in results.values())
    assert [r["status"] for r in results.values()] == ["graded"] * len(PLAN)
    rows = store.rows(ASSIGNMENT)
    assert len(rows) == len(PLAN), [(r.student_id, r.state) for r in rows]
    assert all(row.state.final and row.record for row in rows)
    for upload_id, finished in done_before.items():  # graded before the kill: not again
        assert uploads.get(upload_id).grading.finished == finished
    print("after the restart:", [(r.student_id, r.state.value, r.tries) for r in rows])
    totals = {(s, k): results[i]["total"] for (s, k), i in zip(PLAN, ids, strict=True)}
    assert totals[("alice", "good")] == totals[("carol", "good")] == 100
    assert totals[("bob", "untouched")] == 0


def test_a_worker_killed_mid_grade_gives_the_student_one_result(made, tmp_path):
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1", "OMP_NUM_THREADS": "1"}
    store = made.store()
    with dask_cluster(2, scheduler_env=env, worker_env=made.env(), tmp_dir=tmp_path) as cluster:
        with running_service(made, tmp_path, "--scheduler", cluster.address) as server:
            with client(server.url, made.tokens["dave"]) as http:
                upload_id = upload(http, made.zips["good"]).json()["id"]
                row_id = Uploads(store).get(upload_id).grading.id

                def running():
                    row = store.get(row_id)
                    return row if row.state is Status.RUNNING and row.holder else None

                victim = wait_until(running, 240, "the upload being graded")
                address = victim.holder.rsplit("(", 1)[1].rstrip(")")
                with cluster.client() as dask:
                    names = {
                        a: info["name"]
                        for a, info in dask.scheduler_info(n_workers=-1)["workers"].items()
                    }
                worker = next(w for w in cluster.workers if w.worker_name == names[address])
                worker.kill(signal.SIGKILL)
                result = wait_final(http, upload_id, 400)
                listing = http.get("/api/submissions").json()
    assert result["status"] == "graded" and result["total"] == 100, result
    assert [u["id"] for u in listing] == [upload_id]
    (row,) = [r for r in store.rows(ASSIGNMENT) if r.student_id == "dave"]
    assert row.tries >= 2 and row.state is Status.GRADED


def test_after_the_deadline_uploads_are_refused_with_one_sentence(made, tmp_path):
    """The assignment's own deadline (passed) wins over the plain one for all (to come)."""
    deadlines = ["--deadline", "2999-01-01T00:00:00+00:00"]
    deadlines += ["--deadline", f"{ASSIGNMENT}=2020-01-01T00:00:00+00:00"]
    with running_service(made, tmp_path, *deadlines) as server:
        with client(server.url, made.tokens["erin"]) as http:
            answer = upload(http, made.zips["good"])
            assert http.get("/api/submissions").json() == []
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "The deadline (2020-01-01 00:00 UTC) has passed; uploads are closed and your "
        "counted upload stands."
    }
