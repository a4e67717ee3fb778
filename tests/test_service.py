"""The submission service's JSON API against a real server (uvicorn on 127.0.0.1, its embedded
Dask cluster, the stand-in exercise that grades in seconds): the contract's names, codes and
fields, ownership (404 for another student's id), the instructor's grade table, the daily cap in
the database, the deadline, and the fair queue (a student's next upload waits behind every other
student's first)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from service_support import (
    ASSIGNMENT,
    CONTRACT_FIELDS,
    client,
    make_service_course,
    running_service,
    upload,
    wait_final,
)

from autograder.core.records import Status
from autograder.service.paths import ServicePaths
from autograder.store.uploads import Uploads

pytestmark = pytest.mark.slow

CAP = 3
SERVICE_TEMPLATES = Path(__file__).resolve().parents[1] / "autograder" / "service" / "templates"


@pytest.fixture(scope="module")
def made(tmp_path_factory, models, prepared_data_dir):
    root = tmp_path_factory.mktemp("service")
    return make_service_course(
        root, models, prepared_data_dir, ["good", "untouched", "model_missing"]
    )


@pytest.fixture(scope="module")
def server(made, tmp_path_factory):
    logs = tmp_path_factory.mktemp("service-logs")
    with running_service(made, logs, "--jobs", "1", "--daily-cap", str(CAP)) as server:
        yield server


def test_every_api_route_answers_401_without_a_token(server):
    with client(server.url) as http:
        assert http.get("/api/submissions").status_code == 401
        assert http.get("/api/submissions/abc").status_code == 401
        assert http.get(f"/api/grades/{ASSIGNMENT}").status_code == 401
        answer = http.post("/api/submissions", files={"file": ("a.zip", b"PK")})
        assert answer.status_code == 401
        assert answer.json()["error"].startswith("Log in")
    with client(server.url, "1.not-the-token") as http:
        assert http.get("/api/submissions").status_code == 401
    assert client(server.url).get("/healthz").status_code == 200


def test_an_upload_is_stored_and_committed_before_the_202_and_graded_with_the_contracts_fields(
    server, made
):
    with client(server.url, made.tokens["alice"]) as http:
        answer = upload(http, made.zips["good"])
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert set(body) == {"id", "status"} and body["status"] == "queued"
        stored = Uploads(made.store()).get(body["id"])  # committed before the answer
        assert stored is not None and stored.student_id == "alice"
        assert ServicePaths(made.course_dir).upload_zip(stored.zip_sha256).is_file()
        result = wait_final(http, body["id"])
        listing = http.get("/api/submissions").json()
    assert CONTRACT_FIELDS <= set(result)
    assert result["status"] == "graded", result
    assert (result["tests_score"], result["hidden_score"], result["total"]) == (50, 50, 100)
    assert result["total_max"] == 100 and result["counts"] is True
    assert result["public_accuracy"] is not None and result["position"] is None
    assert [p["name"] for p in result["parts"]] == [
        "autoencoder: test_answer",
        "autoencoder: test_value",
        "autoencoder: hidden_accuracy",
    ]
    hidden = result["parts"][2]["message"]  # before the deadline: no graded accuracy
    assert "pass mark" in hidden and "after the deadline" in hidden
    assert [u["id"] for u in listing] == [body["id"]]


def test_another_students_upload_answers_404_exactly_like_an_id_that_does_not_exist(server, made):
    with client(server.url, made.tokens["bob"]) as http:
        answer = upload(http, made.zips["untouched"])
        assert answer.status_code == 202
        bobs = answer.json()["id"]
    with client(server.url, made.tokens["carol"]) as http:
        other = http.get(f"/api/submissions/{bobs}")
        missing = http.get(f"/api/submissions/{secrets.token_hex(8)}")
        assert http.get("/api/submissions").json() == []
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    with client(server.url, made.tokens["bob"]) as http:
        result = wait_final(http, bobs)
    assert result["status"] == "graded" and result["tests_score"] == 0
    assert "NotImplementedError" in result["message"] or result["message"]


def test_the_grade_table_is_for_instructors_only_and_has_the_csv_columns(server, made):
    with client(server.url, made.tokens["alice"]) as http:
        assert http.get(f"/api/grades/{ASSIGNMENT}").status_code == 403
        assert http.get(f"/api/grades/{ASSIGNMENT}.csv").status_code == 403
    with client(server.url, made.tokens["prof"]) as http:
        rows = http.get(f"/api/grades/{ASSIGNMENT}").json()
        text = http.get(f"/api/grades/{ASSIGNMENT}.csv").text
        assert (
            http.post(
                "/api/submissions",
                data={"assignment": ASSIGNMENT},
                files={"file": ("g.zip", made.zips["good"].read_bytes())},
            ).status_code
            == 403
        )
    alice = next(row for row in rows if row["student_id"] == "alice")
    assert list(alice) == [
        "student_id", "status", "tests_score", "tests_max", "hidden_accuracy", "hidden_score",
        "hidden_max", "total", "total_max", "message", "flags",
    ]  # fmt: skip
    assert alice["total"] == 100 and alice["hidden_accuracy"] is not None
    assert text.splitlines()[0].startswith("student_id,status,tests_score")


def test_bad_zips_are_refused_with_collects_sentence_and_do_not_count_against_the_cap(
    server, made, tmp_path
):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(made.zips["good"].read_bytes()[:5000])
    with client(server.url, made.tokens["dave"]) as http:
        answer = upload(http, broken)
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("broken.zip is damaged or incomplete")
        answer = http.post(
            "/api/submissions", data={"assignment": ASSIGNMENT}, files={"file": ("x.zip", b"")}
        )
        assert answer.status_code == 400 and "not a zip" in answer.json()["error"]
        answer = http.post("/api/submissions", data={"assignment": ASSIGNMENT})
        assert answer.status_code == 400 and "file" in answer.json()["error"]
        other = http.post(
            "/api/submissions",
            data={"assignment": "exercise_08_optional"},
            files={"file": ("g.zip", made.zips["good"].read_bytes())},
        )
        assert other.status_code == 400 and "your token is for exercise_08" in other.text
        assert http.get("/api/submissions").json() == []


def test_the_daily_cap_is_counted_in_the_database_and_answers_429(server, made):
    with client(server.url, made.tokens["erin"]) as http:
        ids = []
        for _ in range(CAP):
            answer = upload(http, made.zips["model_missing"])
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        over = upload(http, made.zips["model_missing"])
        assert over.status_code == 429
        assert "daily limit" in over.json()["error"]
        results = [wait_final(http, upload_id) for upload_id in ids]
    assert len(set(ids)) == CAP
    # The same bytes: one grading row, one record, three uploads.
    assert len({r["finished"] for r in results}) == 1
    assert sum(r["counts"] for r in results) == 1
    rows = [r for r in made.store().rows(ASSIGNMENT) if r.student_id == "erin"]
    assert len(rows) == 1 and rows[0].state is Status.GRADED


def test_a_students_next_upload_waits_behind_every_other_students_first(server, made):
    """One worker: frank hands in three zips, then gina and hank one each; gina's and hank's
    are graded before frank's second and third, and the positions said so while queued."""
    kinds = ["good", "untouched", "model_missing"]
    with (
        client(server.url, made.tokens["frank"]) as frank,
        client(server.url, made.tokens["gina"]) as gina,
        client(server.url, made.tokens["hank"]) as hank,
    ):
        franks = [upload(frank, made.zips[kind]).json()["id"] for kind in kinds]
        ginas = upload(gina, made.zips["untouched"]).json()["id"]
        hanks = upload(hank, made.zips["model_missing"]).json()["id"]
        queued = {
            name: http.get(f"/api/submissions/{upload_id}").json()
            for name, http, upload_id in [
                ("frank2", frank, franks[1]),
                ("frank3", frank, franks[2]),
                ("gina", gina, ginas),
                ("hank", hank, hanks),
            ]
        }
        results = {
            "frank2": wait_final(frank, franks[1]),
            "frank3": wait_final(frank, franks[2]),
            "gina": wait_final(gina, ginas),
            "hank": wait_final(hank, hanks),
        }
        wait_final(frank, franks[0])
    places = {name: body["position"] for name, body in queued.items() if body["status"] == "queued"}
    assert set(places) >= {"frank2", "frank3", "gina", "hank"}, queued
    assert max(places["gina"], places["hank"]) < min(places["frank2"], places["frank3"])
    assert max(results["gina"]["finished"], results["hank"]["finished"]) <= min(
        results["frank2"]["finished"], results["frank3"]["finished"]
    )
    store_rows = {r.id: r for r in made.store().rows(ASSIGNMENT)}
    uploads = Uploads(made.store())
    pairs = [("gina", ginas), ("hank", hanks), ("frank2", franks[1]), ("frank3", franks[2])]
    started = {name: store_rows[uploads.get(i).grading.id].held_since for name, i in pairs}
    assert max(started["gina"], started["hank"]) <= min(started["frank2"], started["frank3"])


def _distinct_zips(made, count: int) -> list[bytes]:
    """``count`` zips of the same submission that differ in one extra file (distinct bytes:
    each gets its own grading row)."""
    import io
    import zipfile

    source = made.zips["model_missing"].read_bytes()
    zips = []
    for index in range(count):
        buffer = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(source)) as original,
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as copy,
        ):
            for item in original.infolist():
                copy.writestr(item, original.read(item))
            copy.writestr("notes.txt", f"attempt {index}\n")
        zips.append(buffer.getvalue())
    return zips


def test_uploads_racing_the_daily_cap_leave_no_row_behind_when_refused(server, made):
    """Eight different zips of one student at once with a cap of three: three are accepted, the
    other five answer 429, and the database holds a grading row for each accepted upload only
    (a refusal that had passed the first check wrote nothing)."""
    import threading

    from autograder.store.accounts import Accounts

    token = Accounts(made.store()).issue(ASSIGNMENT, "ivy", "student")
    zips = _distinct_zips(made, 8)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(zips))

    def send(data: bytes) -> None:
        with client(server.url, token) as http:
            start.wait(60)
            answer = http.post(
                "/api/submissions",
                data={"assignment": ASSIGNMENT},
                files={"file": ("exercise_08.zip", data, "application/zip")},
            )
        with lock:
            answers.append((answer.status_code, answer.json()))

    threads = [threading.Thread(target=send, args=(data,)) for data in zips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    codes = sorted(code for code, _ in answers)
    assert codes == [202] * CAP + [429] * (len(zips) - CAP), answers
    accepted = {body["id"] for code, body in answers if code == 202}
    uploads = Uploads(made.store())
    mine = uploads.of_student("ivy", ASSIGNMENT)
    assert {view.id for view in mine} == accepted
    rows = [row for row in made.store().rows(ASSIGNMENT) if row.student_id == "ivy"]
    assert sorted(row.id for row in rows) == sorted(view.grading.id for view in mine)
    assert uploads.used(ASSIGNMENT, "ivy", mine[0].created.strftime("%Y-%m-%d")) == CAP
    with client(server.url, token) as http:
        for upload_id in accepted:
            wait_final(http, upload_id)


def test_the_feedback_page_is_the_owners_only_and_runs_no_script(server, made):
    """The owner gets the graded upload's feedback as HTML with headers that let no script run
    (and, before the deadline, without the graded part's accuracy); another student's id
    answers exactly as an id that does not exist."""
    with client(server.url, made.tokens["alice"]) as http:
        answer = upload(http, made.zips["good"])
        mine = answer.json()["id"]
        result = wait_final(http, mine)
        page = http.get(f"/api/submissions/{mine}/feedback")
    assert result["feedback"] == f"/api/submissions/{mine}/feedback"
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy and "script" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "Grader&#39;s verdict" in page.text or "Grader's verdict" in page.text
    assert "<script" not in page.text.lower()
    assert "accuracy on the hidden test set is" not in page.text  # the graded part's accuracy
    assert "shown after the deadline" in page.text
    with client(server.url, made.tokens["bob"]) as http:
        other = http.get(f"/api/submissions/{mine}/feedback")
        missing = http.get(f"/api/submissions/{secrets.token_hex(8)}/feedback")
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    assert "Grader" not in other.text


def test_a_grading_stopped_at_a_time_limit_is_graded_and_says_so():
    """A ``timeout`` record (a check or the notebook's run stopped at its time limit, the rest
    graded) shows as ``graded`` (DESIGN's five states), counts like one, and its message starts
    with the sentence that says it was stopped."""
    from dataclasses import replace
    from datetime import datetime

    from autograder.core.records import GradeRecord, PartResult
    from autograder.service.views import TIMED_OUT, counted, submission_json
    from autograder.store import GradingRow
    from autograder.store.uploads import UploadView

    reason = "Checking test_value took longer than 30 s, so it got no points."
    parts = [
        PartResult("autoencoder: test_answer", 25.0, 25.0, ""),
        PartResult("autoencoder: test_value", 0.0, 25.0, reason),
    ]
    record = GradeRecord.from_parts(Status.TIMEOUT, parts, None, reason).to_dict()
    moment = datetime(2026, 12, 7, 5, 0)
    row = GradingRow(
        1, ASSIGNMENT, "ann", "0" * 64, "v", Status.TIMEOUT, reason, 1, None, None, moment,
        moment, record,
    )  # fmt: skip
    view = UploadView("u1", ASSIGNMENT, "ann", "0" * 64, 10, "a.zip", moment, row)
    shown = submission_json(view, None, True, True)
    assert shown["status"] == "graded" and shown["timed_out"] is True
    assert shown["message"].startswith(TIMED_OUT) and reason in shown["message"]
    assert shown["total"] == 25.0 and counted([view], "best") == {"ann": view}
    graded = replace(view, grading=replace(row, state=Status.GRADED))
    assert submission_json(graded, None, True, True)["timed_out"] is False


def test_a_deadline_per_assignment_wins_over_the_plain_one():
    from datetime import datetime

    from autograder.core.errors import AutograderError
    from autograder.service.config import ServiceConfig, parse_deadlines

    plain, own = parse_deadlines(
        ["2026-12-14T23:59:00+01:00", "exercise_08=2026-12-20T12:00:00Z"],
        ["exercise_08", "exercise_08_optional"],
    )
    config = ServiceConfig(course_dir=".", deadline=plain, deadlines=own)
    assert config.deadline_for("exercise_08") == datetime(2026, 12, 20, 12, 0)
    assert config.deadline_for("exercise_08_optional") == datetime(2026, 12, 14, 22, 59)
    between = datetime(2026, 12, 16)
    assert config.deadline_passed("exercise_08_optional", between)
    assert not config.deadline_passed("exercise_08", between)
    with pytest.raises(AutograderError, match="not an assignment"):
        parse_deadlines(["exercise_99=2026-12-20T12:00:00Z"], ["exercise_08"])
    with pytest.raises(AutograderError, match="given twice"):
        parse_deadlines(["2026-12-20T12:00:00Z", "2026-12-21T12:00:00Z"], ["exercise_08"])


def test_an_embedded_clusters_workers_run_nicer_than_the_web_process(server):
    import psutil

    web = psutil.Process(server.pid)
    # Dask's worker processes and the server they fork from (multiprocessing's forkserver)
    starts = ("spawn_main", "multiprocessing.forkserver")
    workers = [
        p for p in web.children(recursive=True) if any(s in str(p.cmdline()) for s in starts)
    ]
    assert workers, [p.cmdline() for p in web.children(recursive=True)]
    assert web.nice() == psutil.Process().nice()  # the web process's main thread: unchanged
    for worker in workers:
        assert worker.nice() == min(web.nice() + 10, 19), worker.cmdline()


def test_an_upload_left_queued_by_an_older_grader_is_graded_by_this_one(server, made):
    """The service restarted with a changed grader: an upload whose row was queued under the
    old grader version is graded by the current one (it does not wait for ever)."""
    import hashlib
    import shutil
    from datetime import UTC, datetime

    from autograder.store.accounts import Accounts

    store = made.store()
    data = made.zips["model_missing"]
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    stored = ServicePaths(made.course_dir).upload_zip(digest)
    if not stored.exists():
        shutil.copyfile(data, stored)
    token = Accounts(store).issue(ASSIGNMENT, "jack", "student")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    old = Uploads(store).add(
        ASSIGNMENT, "jack", digest, "an-older-grader", data.stat().st_size, "e.zip", day, CAP
    )
    with client(server.url, token) as http:
        result = wait_final(http, old.id, 240)
    assert result["status"] == "graded", result
    (row,) = [r for r in store.rows(ASSIGNMENT) if r.student_id == "jack"]
    assert row.grader_version != "an-older-grader" and row.state is Status.GRADED


def test_the_feedback_page_keeps_no_markup_that_could_run(tmp_path):
    """Whatever HTML reaches a feedback notebook (an output, a markdown cell), the page keeps
    no script, event handler, frame or link to another scheme; its text stays."""
    import json

    import jinja2

    from autograder.service.feedback import feedback_page

    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)"><iframe src="/"></iframe>'
    link = '<a href="javascript:alert(3)">click</a>'
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": hostile + link},
            {
                "cell_type": "code",
                "id": "c",
                "metadata": {},
                "execution_count": 1,
                "source": "answer()",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"text/html": hostile, "text/plain": "shown"},
                    }
                ],
            },
        ],
    }
    folder = tmp_path / "feedback"
    folder.mkdir()
    (folder / "autoencoder.ipynb").write_text(json.dumps(notebook))
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SERVICE_TEMPLATES), autoescape=True
    )
    page = feedback_page(templates, folder, "t", {}, folder / ".page.html").lower()
    assert "answer" in page and "click" in page
    for needle in ("<script", "onerror", "<iframe", "javascript:"):
        assert needle not in page, needle
