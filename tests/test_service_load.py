"""The service under load while grading runs (real server, loopback only, bounded): 100 uploads
from 20 concurrent clients with a daily cap of 4, each answered 202 or 429 as the cap says,
the status route answering throughout; then every accepted upload ends final, with one grading
row per student and zip. The figures are printed; ``bench/bench_service.py`` is the benchmark."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter

import pytest
from service_support import ASSIGNMENT, client, make_service_course, running_service, wait_final

from autograder.core.records import Status
from autograder.store.accounts import Accounts

pytestmark = pytest.mark.slow

CLIENTS, UPLOADS, CAP = 20, 5, 4
KINDS = ["good", "untouched", "model_missing"]


def test_100_uploads_from_20_clients_are_each_answered_right_and_all_end_final_once(
    tmp_path, models, prepared_data_dir
):
    made = make_service_course(tmp_path / "c", models, prepared_data_dir, KINDS)
    accounts = Accounts(made.store())
    students = [f"load{i:02d}" for i in range(CLIENTS)]
    tokens = {s: accounts.issue(ASSIGNMENT, s, "student") for s in students}
    answers: dict[str, list[int]] = {s: [] for s in students}
    accepted: dict[str, list[str]] = {s: [] for s in students}
    latencies: list[float] = []
    lock = threading.Lock()
    with running_service(made, tmp_path, "--jobs", "1", "--daily-cap", str(CAP)) as server:

        def student(index: int, name: str) -> None:
            data = made.zips[KINDS[index % len(KINDS)]].read_bytes()
            with client(server.url, tokens[name]) as http:
                for _ in range(UPLOADS):
                    answer = http.post(
                        "/api/submissions",
                        data={"assignment": ASSIGNMENT},
                        files={"file": ("exercise_08.zip", data, "application/zip")},
                    )
                    answers[name].append(answer.status_code)
                    if answer.status_code == 202:
                        accepted[name].append(answer.json()["id"])
                    for upload_id in accepted[name][-2:]:
                        began = time.perf_counter()
                        assert http.get(f"/api/submissions/{upload_id}").status_code == 200
                        with lock:
                            latencies.append(time.perf_counter() - began)

        threads = [threading.Thread(target=student, args=pair) for pair in enumerate(students)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        seconds = time.perf_counter() - began
        assert not any(thread.is_alive() for thread in threads)
        results = {}
        for name in students:
            with client(server.url, tokens[name]) as http:
                for upload_id in accepted[name]:
                    results[upload_id] = wait_final(http, upload_id, 600)
    p = statistics.quantiles(latencies, n=100)
    total = sum(len(a) for a in answers.values())
    print(
        f"{total} uploads from {CLIENTS} clients in {seconds:.1f} s: "
        f"{dict(Counter(c for a in answers.values() for c in a))}; status route "
        f"p50 {p[49] * 1000:.0f} ms, p95 {p[94] * 1000:.0f} ms (n={len(latencies)})"
    )
    for name in students:  # in order: the cap's uploads accepted, the rest refused
        assert answers[name] == [202] * CAP + [429] * (UPLOADS - CAP), (name, answers[name])
    assert len(results) == CLIENTS * CAP
    assert {r["status"] for r in results.values()} == {"graded"}
    rows = [r for r in made.store().rows(ASSIGNMENT) if r.student_id in students]
    assert len(rows) == CLIENTS and all(r.state is Status.GRADED for r in rows)
    for name in students:  # the same zip four times: one record, one counted upload
        mine = [results[i] for i in accepted[name]]
        assert len({r["finished"] for r in mine}) == 1 and sum(r["counts"] for r in mine) == 1
