"""Where grading runs: :func:`grading_client`, an embedded ``LocalCluster`` or a scheduler.

Both give a ``distributed.Client`` whose workers carry :class:`~.plugin.GradingPlugin`, so the
rest of the engine takes the same code path. Dask's own settings bound the tries of a task whose
worker dies (``distributed.scheduler.allowed-failures``, set from ``GradeSettings.tries``; a
scheduler started on its own reads it from its own configuration, e.g.
``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1``). The grading worker's own process gets
``GradeSettings.grader_memory_bytes``: over it, the nanny stops the worker, and the submission
that did it ends, after its tries, as an ``error`` row.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster
from distributed.utils import get_mp_context

from ..core.errors import AutograderError
from ..core.settings import GradeSettings
from ..grading import GradingSpec
from ..grading.workspace import preload
from ..sandbox import WarmParent
from .plugin import GradingPlugin

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
RESOURCE = "grader"


def dask_settings(settings: GradeSettings, dashboard: bool = False) -> dict:
    """The Dask configuration of an embedded cluster. Without the dashboard nobody reads the
    workers' statistical profile (a sample of every thread every 10 ms): it is off."""
    return {
        "distributed.worker.profile.enabled": dashboard,
        "distributed.scheduler.allowed-failures": settings.tries - 1,
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": 0.95,
        "distributed.worker.daemon": False,
        "distributed.admin.tick.limit": "30s",
        "distributed.worker.multiprocessing-method": "forkserver",
    }


@contextmanager
def grading_client(
    scheduler: str | None,
    jobs: int,
    settings: GradeSettings,
    dashboard: bool = False,
    prepare: Sequence[GradingSpec] | Callable[[], Sequence[GradingSpec]] = (),
    share_warm_parent: bool = False,
) -> Iterator[Client]:
    """A client of ``scheduler`` (``tcp://HOST:PORT``), or of an embedded cluster of ``jobs``
    worker processes; raises ``AutograderError`` (one sentence) when it cannot be reached.
    Each worker starts preparing the workspaces of ``prepare`` as it joins; a callable is
    called while the embedded cluster's workers start (what it raises ends the cluster).

    ``share_warm_parent``: the embedded cluster's workers fork their payloads from one warm
    parent per spec of ``prepare``, started here at once, instead of one each (each costs about
    5 s of CPU to import torch and the rest; they all run on this machine)."""
    # Dask's own reports (a lost connection, a killed worker) go unprinted: we say it once.
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    quiet = {log: log.level for log in loggers if log.name.split(".")[0] == "distributed"}
    for log in quiet:
        log.setLevel(logging.CRITICAL + 1)
    try:
        with dask.config.set(dask_settings(settings, dashboard)):
            clients = (
                _scheduler_client(scheduler)
                if scheduler
                else _local_client(jobs, settings, dashboard)
            )
            # The warm parents stop after the cluster (and the workers' connections) is gone.
            with contextlib.ExitStack() as warm_parents, clients as client:
                specs = prepare() if callable(prepare) else prepare
                addresses = {}
                if share_warm_parent and not scheduler:
                    for spec in specs:
                        warm = WarmParent(preload(spec.assignment), shared=True)
                        warm_parents.callback(warm.close)
                        warm.start()
                        addresses[spec] = warm.address
                plugin = GradingPlugin(specs, addresses)
                client.register_plugin(plugin, name=GradingPlugin.name)
                yield client
    finally:
        for log, level in quiet.items():
            log.setLevel(level)


@contextmanager
def _scheduler_client(scheduler: str) -> Iterator[Client]:
    client = _connect(scheduler)
    try:
        _check_workers(client, scheduler)
        yield client
    finally:
        with contextlib.suppress(Exception):  # a scheduler that is gone: nothing to close
            client.close(timeout=CONNECT_TIMEOUT_S)


WORKER_IMPORTS = ("distributed", "autograder.engine.tasks", "torch", "torchvision.transforms.v2")
"""What every grading worker imports (about 3 s of CPU), imported once by the server the
embedded cluster's worker processes fork from."""


def _fork_workers_from_one_server() -> None:
    """Dask's ``forkserver`` method with :data:`WORKER_IMPORTS` preloaded: each worker process
    starts from a copy of one interpreter that imported them, not from a fresh one."""
    context = get_mp_context()  # Dask's forkserver context (its own preload, set once)
    context.set_forkserver_preload(list(WORKER_IMPORTS))


@contextmanager
def _local_client(jobs: int, settings: GradeSettings, dashboard: bool) -> Iterator[Client]:
    _fork_workers_from_one_server()
    with LocalCluster(
        n_workers=0,  # started below, without waiting for them: the caller prepares meanwhile
        threads_per_worker=1,
        processes=True,
        resources={RESOURCE: 1},
        memory_limit=settings.grader_memory_bytes,
        dashboard_address=":8787" if dashboard else None,
        # Without --dashboard the scheduler's small HTTP server (health, metrics) still runs:
        # on loopback and any free port, never on 8787 of every interface.
        scheduler_kwargs={}
        if dashboard
        else {"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        host="127.0.0.1",
        silence_logs=logging.CRITICAL,
    ) as cluster:
        cluster.scale(jobs)
        if dashboard:
            print(f"Dask dashboard: {cluster.dashboard_link}", flush=True)
        with Client(cluster) as client:
            yield client


def _connect(scheduler: str) -> Client:
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        raise AutograderError(
            f"cannot reach the Dask scheduler at {scheduler} ({type(error).__name__}): start it "
            "or leave out --scheduler."
        ) from None


def _check_workers(client: Client, scheduler: str) -> None:
    """At least one worker with a ``grader`` resource (else tasks would wait for ever)."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S * 3)
    except TimeoutError:
        client.close()
        raise AutograderError(
            f"the Dask scheduler at {scheduler} has no workers: start them with `dask worker "
            f"{scheduler} --nthreads 1 --resources {RESOURCE}=1` from the repository root."
        ) from None
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    if not any(w.get("resources", {}).get(RESOURCE) for w in workers):
        client.close()
        raise AutograderError(
            f"no worker of the Dask scheduler at {scheduler} offers the '{RESOURCE}' resource: "
            f"start each with `dask worker {scheduler} --nthreads 1 --resources {RESOURCE}=1`."
        )
