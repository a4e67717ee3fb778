"""The grader's database: rows keyed by submission and grader version, records written once,
rows of a dead grader taken up again, the JSON records of an earlier version imported once."""

from __future__ import annotations

import json

import numpy as np

from autograder.core.records import GradeRecord, PartResult, Status
from autograder.grading.workspace import split_hidden
from autograder.store import Store

GRADED = {"status": "graded", "total": 100.0, "message": ""}


def test_a_record_is_written_once_and_a_rerun_enqueues_the_same_row(tmp_path):
    store = Store.for_course(tmp_path)
    row = store.enqueue("exercise_08", "ann", "a" * 64, "3-x")
    assert store.claim(row.id, "worker 1").state is Status.RUNNING
    assert store.finish(row.id, GRADED) is True
    assert store.finish(row.id, {**GRADED, "total": 0.0}) is False, "a second result counted"
    assert store.claim(row.id, "worker 2") is None, "a final row was taken up again"
    again = store.enqueue("exercise_08", "ann", "a" * 64, "3-x")
    assert again.id == row.id and again.record["total"] == 100.0
    forced = store.enqueue("exercise_08", "ann", "a" * 64, "3-x", force=True)
    assert forced.id == row.id and forced.state is Status.QUEUED and forced.record is None


def test_a_row_left_running_by_a_dead_worker_is_taken_up_again_with_its_tries(tmp_path):
    store = Store.for_course(tmp_path)
    row = store.enqueue("exercise_08", "bob", "b" * 64, "3-x")
    store.claim(row.id, "host pid 1 (dead)")
    assert [r.student_id for r in store.unfinished("exercise_08")] == ["bob"]
    taken = store.claim(row.id, "host pid 2")
    assert (taken.tries, taken.holder) == (2, "host pid 2")


def test_a_new_submission_or_grader_version_is_a_new_row_and_the_newest_record_is_current(
    tmp_path,
):
    store = Store.for_course(tmp_path)
    first = store.enqueue("exercise_08", "cy", "c" * 64, "3-x")
    store.finish(first.id, {**GRADED, "total": 10.0})
    second = store.enqueue("exercise_08", "cy", "d" * 64, "3-x")
    assert second.id != first.id
    assert store.current("exercise_08")["cy"].id == first.id, "an unfinished row is not current"
    store.finish(second.id, {**GRADED, "total": 20.0})
    assert store.current("exercise_08")["cy"].record["total"] == 20.0
    store.write_record("exercise_08", "cy", {"status": "rejected", "message": "not a zip"})
    assert store.current("exercise_08")["cy"].state is Status.REJECTED


def test_records_of_an_earlier_version_are_imported_once_then_gone(tmp_path):
    folder = tmp_path / "results" / "exercise_08"
    folder.mkdir(parents=True)
    (folder / "dan.json").write_text(json.dumps({**GRADED, "submission_sha256": "e" * 64}))
    (folder / "..json").write_text("{}")
    assert Store.for_course(tmp_path).current("exercise_08")["dan"].record["total"] == 100.0
    assert not (tmp_path / "results").exists()
    assert len(Store.for_course(tmp_path).rows()) == 1


def test_a_record_round_trips_and_stores_no_non_finite_number():
    record = GradeRecord.from_parts(
        Status.GRADED,
        [PartResult("nb: a", 6.0, 6.0), PartResult("nb: hidden", 0.0, 50.0, "below")],
        "nb: hidden",
        "below.",
        hidden_accuracy=float("nan"),
    )
    data = record.to_dict()
    assert (data["tests_score"], data["hidden_max"], data["total"]) == (6.0, 50.0, 6.0)
    assert data["hidden_accuracy"] is None
    assert GradeRecord.from_dict(data).to_dict() == data


def test_the_public_part_of_the_hidden_set_is_fixed_per_course_and_disjoint_from_the_graded():
    public, graded = split_hidden(10_000, b"key one", 0.3)
    assert len(public) == 3000 and len(graded) == 7000
    assert not set(public) & set(graded)
    assert np.array_equal(split_hidden(10_000, b"key one", 0.3)[0], public)
    assert not np.array_equal(split_hidden(10_000, b"key two", 0.3)[0], public)


def test_an_upload_to_the_service_is_not_the_current_record_of_collect_and_report(tmp_path):
    """The service counts uploads by its own rule (best or last); report's table of collected
    submissions is not changed by a newer upload's row."""
    from sqlalchemy.orm import Session

    from autograder.store.service_models import Upload
    from autograder.store.store import now

    store = Store.for_course(tmp_path)
    collected = store.enqueue("exercise_08", "eve", "f" * 64, "3-x")
    store.finish(collected.id, {**GRADED, "total": 80.0})
    uploaded = store.enqueue("exercise_08", "eve", "0" * 64, "3-x")
    store.finish(uploaded.id, {**GRADED, "total": 10.0})
    with Session(store.engine) as session:
        session.add(
            Upload(
                id="u1",
                assignment="exercise_08",
                student_id="eve",
                grading_id=uploaded.id,
                zip_sha256="0" * 64,
                size=1,
                file_name="eve.zip",
                created=now(),
            )
        )
        session.commit()
    assert store.current("exercise_08")["eve"].record["total"] == 80.0
