"""Shared fixtures: the prepared MNIST folder and isolated copies of it."""

import os
import shutil
from pathlib import Path

# Test files run side by side (pytest-xdist), each with notebooks and graders of its own: one
# compute thread per process, or PyTorch's threads wait on each other (set before torch loads;
# kernels and sandboxes started by the tests inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import hostile_code  # noqa: E402
import pytest  # noqa: E402

# The grader's secret the hostile corpus looks for, in this process's environment from the
# start: the grading workers fork from a server started by the first test that grades.
os.environ["AUTOGRADER_CORPUS_SECRET"] = hostile_code.GRADER_SECRET

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


@pytest.fixture(scope="session")
def prepared_data_dir() -> Path:
    """The repository's ``data/``, prepared once (instructor side, hidden test included)."""
    from autograder import data

    data.prepare(DATA_DIR, log=lambda message: None)
    return DATA_DIR


@pytest.fixture
def student_data_dir(prepared_data_dir: Path, tmp_path: Path) -> Path:
    """A fresh data folder with copies of the verified training files only (no splits, no test)."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in TRAIN_FILES:
        shutil.copyfile(prepared_data_dir / "MNIST" / "raw" / name, raw / name)
    return tmp_path / "data"


# --- Real servers (tests/servers.py) ---------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def no_server_left_running():
    """At the end of the session (each pytest-xdist worker's own), every process group started
    through tests/servers.py must be gone: one that is not is killed, and the session fails."""
    yield
    import sys

    servers = sys.modules.get("servers")
    if servers is None:  # nothing was started through it
        return
    report = servers.kill_leftovers()
    if report:
        pytest.fail("servers left running by the tests:\n" + "\n".join(report), pytrace=False)


@pytest.fixture
def postgres_url(tmp_path: Path):
    """A PostgreSQL server of the test's own (tests/servers.py); its SQLAlchemy URL."""
    from servers import postgres_server

    with postgres_server(tmp_path) as url:
        yield url


@pytest.fixture
def two_worker_cluster(tmp_path: Path):
    """A real Dask scheduler and two workers (``worker-0``, ``worker-1``: nanny, one thread,
    ``grader=1``) on 127.0.0.1 (tests/servers.py ``DaskCluster``; ``.address``, ``.workers``)."""
    from servers import dask_cluster

    with dask_cluster(2, tmp_dir=tmp_path) as cluster:
        yield cluster


# --- The stand-in exercise as a released course (tests/standin_course.py) --------------------

from standin_course import models, standin_course  # noqa: E402, F401 (fixtures)
