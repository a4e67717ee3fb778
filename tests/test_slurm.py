"""dask_jobqueue.SLURMCluster on a real single-node Slurm started by the test itself.

Slurm (Debian's slurmctld, slurmd, munge) runs from a generated slurm.conf in a temporary
folder (tests/servers.py ``slurm_cluster``); the worker is a batch job submitted through
``sbatch`` that joins the test's scheduler and runs a task importing ``autograder``.
"""

import os
import sys
import time
from pathlib import Path

import pytest
import servers
from servers import REPO_ROOT, slurm_cluster, wait_until


@pytest.fixture(autouse=True)
def time_limit():
    """No test here runs longer than 4 minutes, whatever hangs."""
    with servers.time_limit(240, "a test of test_slurm"):
        yield


def grading_workers(tmp_path: Path, memory: str) -> dict:
    """SLURMCluster's options for grading workers, as the README gives them: one core and one
    ``grader`` resource per job, the venv's Python, the repository as working directory."""
    return {
        "cores": 1,
        "processes": 1,
        "memory": memory,
        "walltime": "00:10:00",
        "python": sys.executable,
        "worker_extra_args": ["--resources", "grader=1"],
        "job_script_prologue": [f"cd {REPO_ROOT}", f"export PYTHONPATH={REPO_ROOT}"],
        # Its HTTP server runs whatever "dashboard" says: on 127.0.0.1, any free port.
        "scheduler_options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
        "log_directory": str(tmp_path / "jobs"),
        "shebang": "#!/bin/sh",
    }


def test_slurmcluster_worker_job_runs_a_task(tmp_path: Path):
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    def where_am_i():
        # Defined here, so that it travels by value: the job cannot import this test module.
        import autograder

        return {
            "autograder": autograder.__file__,
            "job": os.environ.get("SLURM_JOB_ID"),
            "pid": os.getpid(),
            "cwd": os.getcwd(),
        }

    started = time.monotonic()
    with slurm_cluster(tmp_path) as slurm:
        slurm_up = time.monotonic() - started
        assert os.environ["SLURM_CONF"] == str(slurm.conf)
        daemons = [slurm.munged, slurm.slurmctld, slurm.slurmd]
        daemon_pids = [pid for daemon in daemons for pid in daemon.processes()]
        with (
            SLURMCluster(**grading_workers(tmp_path, memory="1GB")) as cluster,
            Client(cluster) as client,
        ):
            submitted = time.monotonic()
            cluster.scale(1)
            client.wait_for_workers(1, timeout=120)
            joined = time.monotonic() - submitted
            (job,) = slurm.job_ids()
            answer = client.submit(where_am_i, resources={"grader": 1}, pure=False).result(60)
            assert answer["job"] == job
            assert Path(answer["autograder"]).is_relative_to(REPO_ROOT)
            assert Path(answer["cwd"]) == REPO_ROOT
            job_pids = slurm.job_processes()
            assert answer["pid"] in job_pids  # the worker runs inside the Slurm job
        # Closing the cluster cancels its job.
        wait_until(lambda: not slurm.job_ids(), 30, "the worker job leaving the queue")
        wait_until(lambda: not slurm.job_processes(), 30, "the worker job's processes ending")
        stop_started = time.monotonic()
    stopped = time.monotonic() - stop_started
    print(
        f"slurm up in {slurm_up:.1f} s, worker job joined in {joined:.1f} s, "
        f"slurm stopped in {stopped:.1f} s"
    )
    assert "SLURM_CONF" not in os.environ or os.environ["SLURM_CONF"] != str(slurm.conf)
    stats = [servers._proc_stat(pid) for pid in daemon_pids + job_pids]
    assert all(stat is None or stat[0] in ("Z", "X") for stat in stats)
    assert not any(daemon.running() for daemon in daemons)


def test_grade_on_a_slurmcluster_grades_the_batch_like_the_embedded_cluster(
    tmp_path: Path, standin_course, models, prepared_data_dir
):
    """The README's Slurm recipe: a SLURMCluster's workers (Slurm batch jobs) grade a batch
    through ``grade --scheduler``, with the same records as a run on this machine."""
    from dask_jobqueue import SLURMCluster
    from standin_course import collect_kinds, grade_settings

    from autograder.grade import grade
    from autograder.results import read_results
    from autograder.store import Store

    collect_kinds(standin_course, models, prepared_data_dir, ["good", "untouched"])
    with (
        slurm_cluster(tmp_path) as slurm,
        SLURMCluster(**grading_workers(tmp_path, memory="6GB")) as cluster,
    ):
        cluster.scale(1)
        grade(
            standin_course,
            "exercise_08",
            settings=grade_settings(prepared_data_dir),
            scheduler=cluster.scheduler_address,
        )
        job_pids = slurm.job_processes()
        holders = {row.holder for row in Store.for_course(standin_course).rows("exercise_08")}
    totals = {r["student_id"]: r["total"] for r in read_results(standin_course, "exercise_08")}
    assert totals == {"good": 100.0, "untouched": 0.0}
    graded_by = {int(holder.split(" pid ")[1].split()[0]) for holder in holders}
    assert graded_by and graded_by <= set(job_pids), (holders, job_pids)
