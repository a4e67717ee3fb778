"""The real servers of tests/servers.py start, answer, and are gone after they stop."""

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import servers
from servers import dask_cluster, postgres_server, wait_until


@pytest.fixture(autouse=True)
def time_limit():
    """No test here runs longer than 4 minutes, whatever hangs."""
    with servers.time_limit(240, "a test of test_servers"):
        yield


def all_gone(pids):
    """No pid of ``pids`` is a live process (a zombie waiting for init counts as gone)."""
    stats = [servers._proc_stat(pid) for pid in pids]
    return all(stat is None or stat[0] in ("Z", "X") for stat in stats)


def listening(pids):
    """(address, port) of every TCP socket the processes ``pids`` listen on (IPv4 and IPv6)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                if table == "tcp":
                    address = socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1])
                found.add((address, int(port, 16)))
    return found


def test_free_port_can_be_bound():
    port = servers.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_stop_kills_the_group_and_a_child_that_left_it(tmp_path: Path):
    # A child that moved to a session of its own is no longer in the group: stop() finds it
    # through its parent before the group goes.
    server = servers.start(
        "sleeper", ["sh", "-c", "setsid sleep 600 & sleep 600"], log=tmp_path / "sleeper.log"
    )
    stray = wait_until(
        lambda: [p for p in servers.descendants(server.pid) if servers._pgid(p) != server.pgid],
        10,
        "the setsid child",
    )
    assert server in [found for found, _ in servers.leftovers()]
    members = server.processes()
    assert server.pid in members and set(stray) <= set(members)
    started = time.monotonic()
    server.stop(5.0)
    assert time.monotonic() - started < 5
    assert all_gone(members + stray)
    assert server not in [found for found, _ in servers.leftovers()]


def test_postgres_answers_through_sqlalchemy_and_is_gone_after(tmp_path: Path):
    import psycopg
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    started = time.monotonic()
    with postgres_server(tmp_path) as url:
        up = time.monotonic() - started
        server = servers.started()[-1]
        assert server.name == "postgres" and server.running()
        assert url.startswith("postgresql+psycopg://postgres:")
        # Not root: PostgreSQL refuses it, and a test server needs no more.
        uid = int(Path(f"/proc/{server.pid}/status").read_text().split("Uid:")[1].split()[0])
        assert uid != 0
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (id integer PRIMARY KEY, name text)"))
            connection.execute(text("INSERT INTO t VALUES (1, 'one'), (2, 'two')"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 2
            assert "PostgreSQL" in connection.execute(text("SELECT version()")).scalar()
        engine.dispose()
        # Only on 127.0.0.1, port from the URL; a connection left open does not hold the stop up.
        parsed = make_url(url)
        assert parsed.host == "127.0.0.1"
        kept_open = psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database,
        )
        # The postmaster and its helpers and backends (each in a session of its own).
        members = server.processes()
        assert len(members) > 3 and len(servers.group_members(server.pgid)) == 1
        assert listening([server.pid]) == {("127.0.0.1", parsed.port)}
        stop_started = time.monotonic()
    stop = time.monotonic() - stop_started
    kept_open.close()
    print(f"postgres: up in {up:.1f} s, stopped in {stop:.1f} s")
    assert stop < 15
    assert all_gone(members)
    assert not server.running()
    assert not any(Path(tmp_path).glob("autograder-pg-*"))  # its folder is not in tmp_path
    assert "database system is shut down" in (tmp_path / "postgres.log").read_text()


def test_dask_cluster_runs_tasks_and_is_gone_after(tmp_path: Path):
    started = time.monotonic()
    with dask_cluster(
        2,
        tmp_dir=tmp_path,
        scheduler_env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"},
        worker_env={"AUTOGRADER_TEST_MARK": "on the workers"},
    ) as cluster:
        up = time.monotonic() - started
        assert cluster.address.startswith("tcp://127.0.0.1:")
        with cluster.client() as client:
            assert client.submit(lambda: 1 + 1, pure=False).result(timeout=60) == 2

            def settings():
                import dask

                return dask.config.get("distributed.scheduler.allowed-failures"), os.environ

            # env= is laid over the caller's environment, not put in its place.
            failures, scheduler_environ = client.run_on_scheduler(settings)
            assert failures == 1 and scheduler_environ["PATH"] == os.environ["PATH"]
            marks = client.run(lambda: os.environ.get("AUTOGRADER_TEST_MARK"))
            assert list(marks.values()) == ["on the workers"] * 2

            def where_autograder():
                import autograder

                return autograder.__file__, os.getcwd()

            path, cwd = client.submit(where_autograder, resources={"grader": 1}, pure=False).result(
                timeout=60
            )
            assert Path(path).is_relative_to(servers.REPO_ROOT)
            assert Path(cwd) == servers.REPO_ROOT
            assert servers.worker_names(client) == {"worker-0", "worker-1"}
        handles = [cluster.scheduler, *cluster.workers]
        pids = [pid for handle in handles for pid in handle.processes()]
        # Nothing of the cluster listens beyond 127.0.0.1 (no 0.0.0.0 dashboard either).
        addresses = listening(pids)
        assert addresses and {address for address, _ in addresses} == {"127.0.0.1"}
        worker_pids = [worker.worker_pid() for worker in cluster.workers]
        assert set(worker_pids) <= set(pids) and not set(worker_pids) & {h.pid for h in handles}
        stop_started = time.monotonic()
    stop = time.monotonic() - stop_started
    print(f"dask scheduler + 2 workers: up in {up:.1f} s, stopped in {stop:.1f} s")
    assert all_gone(pids)
    assert not any(handle.running() for handle in handles)


def test_sigkill_of_a_worker_is_seen_and_its_task_rescheduled(tmp_path: Path):
    first_run = tmp_path / "first-run"

    def hold_the_first_time(first_run=first_run):
        # The first run waits to be killed; the rescheduled one answers with its pid.
        if not first_run.exists():
            first_run.write_text(str(os.getpid()))
            time.sleep(600)
        return os.getpid()

    with dask_cluster(2, tmp_dir=tmp_path) as cluster, cluster.client() as client:
        victim = cluster.workers[0]
        future = client.submit(
            hold_the_first_time,
            workers=["worker-0"],
            allow_other_workers=True,
            resources={"grader": 1},
            pure=False,
        )
        wait_until(first_run.exists, 60, "the task starting on worker-0")
        running_in = int(wait_until(first_run.read_text, 10, "the task's pid"))
        old_address = next(
            address
            for address, info in client.scheduler_info(n_workers=-1)["workers"].items()
            if info["name"] == "worker-0"
        )
        killed_at = time.monotonic()
        assert victim.kill(signal.SIGKILL) == running_in  # the real worker, not its nanny
        wait_until(
            lambda: old_address not in client.scheduler_info(n_workers=-1)["workers"],
            30,
            "the scheduler removing the killed worker",
        )
        noticed = time.monotonic() - killed_at
        answer = future.result(timeout=90)
        rescheduled = time.monotonic() - killed_at
        assert answer != running_in
        # The nanny starts a new worker process under the same name.
        wait_until(lambda: "worker-0" in servers.worker_names(client), 60, "worker-0 back")
        assert victim.worker_pid() != running_in
        assert victim.pid in servers.group_members(victim.pgid)
    print(f"SIGKILL seen by the scheduler in {noticed:.1f} s, task done in {rescheduled:.1f} s")
