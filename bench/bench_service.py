"""Benchmark of the submission service under load, with grading running. Prints its figures.

A real service (uvicorn on 127.0.0.1, its embedded Dask cluster of ``--jobs`` workers) on the
stand-in exercise (``tests/corpus_behaviour.py``: a submission grades in seconds) with a daily
cap of 4; 20 students as 20 concurrent clients (httpx, loopback only) each upload 5 zips (so 80
are accepted and 20 refused with 429) and poll the status route of their uploads between
uploads. Printed: the answers by status, uploads accepted per second, the status route's
latency (p50, p95, max) under that load, then the time until every accepted upload is final and
how they ended (each must end graded, rejected or error exactly once).

Usage (from the repository root, after ``python -m autograder data``)::

    python bench/bench_service.py [--students 20] [--uploads 5] [--jobs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import corpus_behaviour as cb  # noqa: E402
import httpx  # noqa: E402
from servers import uvicorn_server  # noqa: E402

from autograder import course, release  # noqa: E402
from autograder.data import prepare  # noqa: E402
from autograder.exercise_modules import exercise_code_module  # noqa: E402
from autograder.store import Store  # noqa: E402
from autograder.store.accounts import Accounts  # noqa: E402

ASSIGNMENT = "exercise_08"
KINDS = ["good", "untouched", "model_missing"]
CAP = 4
FINAL = {"graded", "rejected", "error"}


def _course(root: Path, students: int) -> tuple[Path, Path, dict, dict]:
    data_dir = REPO / "data"
    prepare(data_dir, log=lambda message: None)
    repo = root / "repo"
    cb.make_exercise(repo)
    course.REPO_ROOT = repo
    course_dir = root / "course"
    release.release(course_dir, [ASSIGNMENT], dist_dir=root / "dist")
    files = exercise_code_module(ASSIGNMENT, "mnist_files")
    raw = data_dir / "MNIST" / "raw"
    models = cb.make_models(
        root / "models",
        files.read_idx(raw / "train-images-idx3-ubyte"),
        files.read_idx(raw / "train-labels-idx1-ubyte"),
    )
    context = {"models": models, "course_dir": course_dir, "data_dir": data_dir}
    release_dir = course_dir / "release" / ASSIGNMENT
    (root / "zips").mkdir()
    zips = {
        kind: cb.write_zip(files, root / "zips" / f"{kind}.zip")
        for kind, files in cb.corpus(release_dir, context, KINDS).items()
    }
    accounts = Accounts(Store.for_course(course_dir))
    tokens = {
        f"s{i:02d}": accounts.issue(ASSIGNMENT, f"s{i:02d}", "student") for i in range(students)
    }
    return course_dir, repo, zips, tokens


def _student(url, token, zip_bytes, uploads, answers, latencies, ids, lock) -> None:
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        mine = []
        for _ in range(uploads):
            answer = http.post(
                "/api/submissions",
                data={"assignment": ASSIGNMENT},
                files={"file": ("exercise_08.zip", zip_bytes, "application/zip")},
            )
            with lock:
                answers.append(answer.status_code)
            if answer.status_code == 202:
                mine.append(answer.json()["id"])
            for upload_id in mine[-2:] * 3:
                began = time.perf_counter()
                status = http.get(f"/api/submissions/{upload_id}")
                elapsed = time.perf_counter() - began
                assert status.status_code == 200, status.text
                with lock:
                    latencies.append(elapsed)
        with lock:
            ids.extend((token, upload_id) for upload_id in mine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-service-") as temp:
        root = Path(temp)
        root.chmod(0o755)
        course_dir, repo, zips, tokens = _course(root, args.students)
        env = {
            **os.environ,
            "AUTOGRADER_DATA_DIR": str(REPO / "data"),
            "AUTOGRADER_PROBE_TIMEOUT_S": "30",
            "AUTOGRADER_TIMEOUT_S": "120",
        }
        server_args = ["--jobs", str(args.jobs), "--daily-cap", str(CAP)]
        with uvicorn_server(course_dir, repo_root=repo, args=server_args, env=env) as server:
            answers, latencies, ids = [], [], []
            lock = threading.Lock()
            threads = [
                threading.Thread(
                    target=_student,
                    args=(
                        server.url,
                        token,
                        zips[KINDS[i % len(KINDS)]].read_bytes(),
                        args.uploads,
                        answers,
                        latencies,
                        ids,
                        lock,
                    ),
                )  # fmt: skip
                for i, token in enumerate(tokens.values())
            ]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - began
            counts = Counter(answers)
            accepted = counts.get(202, 0)
            quantiles = statistics.quantiles(latencies, n=100)
            print(
                f"{len(answers)} uploads from {len(threads)} concurrent clients in {seconds:.1f} s"
            )
            print(f"answers: {dict(sorted(counts.items()))} (expected {len(threads) * CAP} x 202, "
                  f"{len(threads) * (args.uploads - CAP)} x 429)")  # fmt: skip
            print(f"uploads accepted per second: {accepted / seconds:.1f}")
            print(
                f"status route under load: n={len(latencies)} p50={quantiles[49] * 1000:.0f} ms "
                f"p95={quantiles[94] * 1000:.0f} ms max={max(latencies) * 1000:.0f} ms"
            )
            drained = time.perf_counter()
            finals: dict[str, str] = {}
            deadline = time.monotonic() + 900
            while len(finals) < len(ids) and time.monotonic() < deadline:
                for token, upload_id in ids:
                    if upload_id in finals:
                        continue
                    answer = httpx.get(
                        f"{server.url}/api/submissions/{upload_id}",
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=60,
                    ).json()
                    if answer["status"] in FINAL:
                        finals[upload_id] = answer["status"]
                time.sleep(1)
            rows = Store.for_course(course_dir).rows(ASSIGNMENT)
            waited = time.perf_counter() - drained
            print(
                f"all {len(ids)} accepted uploads final {waited:.0f} s later: "
                f"{dict(Counter(finals.values()))}; {len(rows)} grading rows "
                f"({dict(Counter(r.state.value for r in rows))}, tries "
                f"{dict(Counter(r.tries for r in rows))})"
                if len(finals) == len(ids)
                else f"NOT all final after 900 s: {len(finals)} of {len(ids)}"
            )


if __name__ == "__main__":
    main()
