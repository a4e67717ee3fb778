"""Real servers for tests: PostgreSQL, a Dask scheduler and Dask workers, on 127.0.0.1.

Every server is a real process started in a session of its own (``start_new_session=True``, so
its process group id is its pid) and stopped through that group with ``os.killpg``, never by
name: a polite signal, then SIGKILL after a bound. Every process started here is recorded;
``tests/conftest.py`` checks at the end of each test session (each pytest-xdist worker has its
own) that every recorded group is gone, and kills and reports any that is not.

    from servers import dask_cluster, postgres_server

    def test_batch(tmp_path):
        with postgres_server(tmp_path) as url, dask_cluster(2, tmp_dir=tmp_path) as cluster:
            ...  # create_engine(url); grade ... --scheduler cluster.address
            cluster.workers[0].kill()  # SIGKILL to the worker process (its nanny restarts it)

The fixtures ``postgres_url`` and ``two_worker_cluster`` in ``tests/conftest.py`` wrap these.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

# Every process started through this module, in start order (this process only: each
# pytest-xdist worker is a process of its own with its own list).
_STARTED: list[Server] = []


@contextlib.contextmanager
def time_limit(seconds: int, what: str) -> Iterator[None]:
    """Raise ``TimeoutError`` in the main thread after ``seconds``, whatever hangs (SIGALRM)."""

    def expired(signum, frame):
        raise TimeoutError(f"{what} took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).

    Another process may take it before the caller binds it: callers that cannot bind port 0
    themselves retry on "address already in use" (``postgres_server`` does).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1
) -> object:
    """Call ``predicate`` until it returns something true, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# --- processes ------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time) of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def _pgid(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[2] if stat else None


def _live_stats() -> dict[int, tuple[str, int, int, int]]:
    """Every live (not zombie) process: pid -> (state, ppid, pgid, start time)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _proc_stat(int(name))
            if stat and stat[0] not in ("Z", "X"):
                stats[int(name)] = stat
    return stats


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``pgid``."""
    return [pid for pid, stat in _live_stats().items() if stat[2] == pgid]


def descendants(pid: int) -> list[int]:
    """Live processes below ``pid`` in the process tree (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for other, stat in _live_stats().items():
        children.setdefault(stat[1], []).append(other)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _identities(pids: Sequence[int]) -> set[tuple[int, int]]:
    """(pid, start time) of each live pid: a pid reused later is another identity."""
    found = set()
    for pid in pids:
        stat = _proc_stat(pid)
        if stat and stat[0] not in ("Z", "X"):
            found.add((pid, stat[3]))
    return found


def _still_alive(identities: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return {ident for ident in identities if ident in _identities([ident[0]])}


@dataclass
class Server:
    """One started process, leader of its own process group (pgid == pid).

    Its processes are the group's members and every live process below the leader: some
    servers move their children to sessions of their own (each PostgreSQL backend calls
    ``setsid``), out of the group.
    """

    name: str
    popen: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM
    stopped: bool = field(default=False, init=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def processes(self) -> list[int]:
        """Live processes of this server: its group's members and the leader's descendants."""
        self.popen.poll()  # reap the leader if it exited, so that it does not count as alive
        members = set(group_members(self.pgid))
        if self.popen.returncode is None:
            members.update(descendants(self.pid))
        return sorted(members)

    def running(self) -> bool:
        """Whether any process of this server is still alive."""
        return bool(self.processes())

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to this process (the group leader only); returns the pid signalled."""
        os.kill(self.pid, sig)
        return self.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """Stop: ``stop_signal`` to the group, SIGKILL to every process left after ``timeout`` s
        (group members, and processes below the leader that left the group, found before the
        leader goes); returns once all are gone (or raises)."""
        self.stopped = True
        tracked = _identities(self.processes())
        self.signal_group(self.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        # Children of a leader that exited cleanly get a moment to follow it.
        grace = 2.0 if self.popen.returncode is not None else 0.0
        if not _wait_gone(self, tracked, grace):
            self.signal_group(signal.SIGKILL)
            for pid, _ in _still_alive(tracked):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        if not _wait_gone(self, tracked, 10.0):
            raise RuntimeError(f"{self.name} (pgid {self.pgid}) survived SIGKILL")


def _wait_gone(server: Server, tracked: set[tuple[int, int]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(server.pgid) or _still_alive(tracked):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def start(
    name: str,
    argv: Sequence[str | os.PathLike],
    *,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    cls: type[Server] | None = None,
) -> Server:
    """Start ``argv`` in a new session (its own process group), output to ``log``, recorded.

    ``cls``: the handle's class (a subclass of ``Server``), ``Server`` by default.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    as_user = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            [str(arg) for arg in argv],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **as_user,
        )
    server = (cls or Server)(name, popen, log, stop_signal)
    _STARTED.append(server)
    return server


def run_bounded(name: str, argv: Sequence[str | os.PathLike], timeout: float, **kwargs) -> str:
    """Run a command to its end like ``start`` (own group, recorded); its output, or raise."""
    server = start(name, argv, **kwargs)
    try:
        server.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(
            f"{name} did not finish in {timeout:.0f} s:\n{server.log_tail()}"
        ) from None
    finally:
        server.stop(5.0)
    if server.popen.returncode != 0:
        raise RuntimeError(f"{name} exited with {server.popen.returncode}:\n{server.log_tail()}")
    return server.log.read_text(errors="replace")


def started() -> list[Server]:
    """Every process started through this module in this process so far, oldest first."""
    return list(_STARTED)


def leftovers() -> list[tuple[Server, list[int]]]:
    """Recorded servers with a live process: [(server, [pid, ...])]."""
    found = []
    for server in _STARTED:
        processes = server.processes()
        if processes:
            found.append((server, processes))
    return found


def kill_leftovers() -> list[str]:
    """SIGKILL every recorded server still alive; one line per server found (empty: none)."""
    report = []
    for server, processes in leftovers():
        report.append(
            f"{server.name} (pgid {server.pgid}) still running, killed: "
            + "; ".join(f"{pid} {cmdline(pid)[:120]}" for pid in processes)
        )
        tracked = _identities(processes)
        server.signal_group(signal.SIGKILL)
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.popen.wait(5)
        _wait_gone(server, tracked, 5.0)
    return report


# An interrupted run (Ctrl-C, a crash of pytest) leaves nothing behind either.
atexit.register(kill_leftovers)


def _base_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    """This process's environment with ``env`` laid over it (a value None removes the
    variable), and the repository first on PYTHONPATH."""
    merged = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    path = merged.get("PYTHONPATH", "")
    merged["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    merged.setdefault("OMP_NUM_THREADS", "1")
    return merged


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_bin() -> Path:
    """Debian's PostgreSQL programs, newest version (/usr/lib/postgresql/VERSION/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): "
            "apt-get install postgresql (.ci/run does)"
        )
    return found[-1].parent


def _postgres_user() -> str | None:
    """The user the server runs as: it refuses root. None: the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("no unprivileged user (postgres or nobody) to run PostgreSQL as")


@contextlib.contextmanager
def postgres_server(
    tmp_dir: Path | None = None, *, database: str = "autograder", timeout: float = 60.0
) -> Iterator[str]:
    """A PostgreSQL server of its own on 127.0.0.1 and a free port; yields its SQLAlchemy URL.

    ``postgresql+psycopg://postgres:PASSWORD@127.0.0.1:PORT/DATABASE`` (a random password,
    scram-sha-256). The cluster is made with ``initdb`` in a fresh folder under the system
    temporary directory (not under ``tmp_dir``: pytest's ``tmp_path`` sits below a folder only
    root may enter, and the server runs as the ``postgres`` user, or ``nobody``, since it refuses
    to run as root), its unix socket in that folder too. Its log is ``tmp_dir/postgres.log``
    when ``tmp_dir`` is given. Stopped on exit (SIGINT, PostgreSQL's "fast shutdown" that also
    ends open connections, then SIGKILL), the folder removed.
    """
    import psycopg

    bin_dir = postgres_bin()
    user = _postgres_user()
    base = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    log = (Path(tmp_dir) if tmp_dir is not None else base) / "postgres.log"
    server = None
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        password = secrets.token_hex(16)
        pwfile = base / "password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        run_bounded(
            "initdb",
            [bin_dir / "initdb", "-D", base / "data", "-U", "postgres", "--pwfile", pwfile]
            + ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
            timeout=120,
            log=log,
            cwd=base,
            env=env,
            user=user,
        )
        pwfile.unlink()
        for _attempt in range(3):
            port = free_port()
            server = start(
                "postgres",
                [bin_dir / "postgres", "-D", base / "data"]
                + ["-c", f"listen_addresses={HOST}", "-c", f"port={port}"]
                + ["-c", f"unix_socket_directories={base}"]
                # A throwaway test cluster: no need to survive a power cut.
                + ["-c", "fsync=off", "-c", "synchronous_commit=off"]
                + ["-c", "full_page_writes=off", "-c", "max_connections=50"],
                log=log,
                cwd=base,
                env=env,
                user=user,
                stop_signal=signal.SIGINT,
            )
            conninfo = dict(host=HOST, port=port, user="postgres", password=password)

            def accepts(conninfo=conninfo, server=server):
                if server.popen.poll() is not None:
                    return "exited"
                try:
                    with psycopg.connect(**conninfo, dbname="postgres", connect_timeout=2):
                        return "up"
                except psycopg.OperationalError:
                    return None

            state = wait_until(accepts, timeout, f"PostgreSQL on {HOST}:{port}", 0.1)
            if state == "up":
                break
            tail = server.log_tail()
            server.stop(5.0)
            if "already in use" not in tail:
                raise RuntimeError(f"PostgreSQL did not start:\n{tail}")
        else:
            raise RuntimeError(f"PostgreSQL found no free port in 3 tries:\n{server.log_tail()}")
        with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        yield f"postgresql+psycopg://postgres:{password}@{HOST}:{port}/{database}"
    finally:
        if server is not None:
            server.stop(15.0)
        shutil.rmtree(base, ignore_errors=True)


# --- Dask -----------------------------------------------------------------------------------


@dataclass
class DaskScheduler(Server):
    """A ``dask scheduler`` process; ``kill(sig)`` signals it (the scheduler is the leader)."""

    address: str = ""


@dataclass
class DaskWorker(Server):
    """A ``dask worker`` process: with a nanny, the nanny leads the group and the worker is its
    child; ``kill(sig)`` signals the worker process itself (the nanny then starts a new one under
    the same name, as in production); ``nanny_pid`` is the leader.
    """

    worker_name: str = ""
    nanny: bool = True

    @property
    def nanny_pid(self) -> int | None:
        return self.pid if self.nanny else None

    def worker_pid(self, timeout: float = 30.0) -> int:
        """The pid of the process that runs tasks (waits for a nanny's child to exist)."""
        if not self.nanny:
            return self.pid

        def child():
            for pid, stat in _live_stats().items():
                if stat[1] == self.pid and "spawn_main" in cmdline(pid):
                    return pid
            return None

        return wait_until(child, timeout, f"the worker process under nanny {self.pid}")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the worker process (not its nanny); returns the pid signalled."""
        pid = self.worker_pid()
        os.kill(pid, sig)
        return pid


def _python_m(module: str) -> list[str]:
    return [sys.executable, "-m", module]


@contextlib.contextmanager
def dask_scheduler(
    *,
    env: Mapping[str, str | None] | None = None,
    tmp_dir: Path | None = None,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> Iterator[tuple[str, DaskScheduler]]:
    """A real ``dask scheduler`` on 127.0.0.1; yields ``(address, handle)``.

    The port is chosen by the scheduler itself (``--port 0``, read back from its
    ``--scheduler-file``), so two test processes never race for one. No dashboard; its HTTP
    endpoint on 127.0.0.1 only. ``env``: variables set on top of this process's environment (a
    value None removes one), e.g. ``{"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}``;
    the repository is put first on PYTHONPATH and is the working directory.
    """
    folder = Path(tempfile.mkdtemp(prefix="dask-scheduler-", dir=tmp_dir))
    scheduler_file = folder / "scheduler.json"
    server = None
    try:
        server = start(
            "dask scheduler",
            _python_m("distributed.cli.dask_scheduler")
            + ["--host", HOST, "--port", "0", "--no-dashboard"]
            # --no-dashboard alone still serves HTTP (health, metrics) on 0.0.0.0:8787, which two
            # schedulers at once then fight over: 127.0.0.1 and a port of the system's choice.
            + ["--dashboard-address", f"{HOST}:0"]
            + ["--scheduler-file", str(scheduler_file), *extra_args],
            log=folder / "scheduler.log",
            cwd=REPO_ROOT,
            env=_base_env(env),
            cls=DaskScheduler,
        )

        def address():
            if server.popen.poll() is not None:
                raise RuntimeError(f"dask scheduler exited:\n{server.log_tail()}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                return json.loads(scheduler_file.read_text())["address"]
            return None

        server.address = wait_until(address, timeout, "dask scheduler start")
        yield server.address, server
    finally:
        if server is not None:
            server.stop(15.0)
        # Keep the log (scheduler.log) when the caller gave a folder.
        if tmp_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


def _client(address: str, timeout: float):
    from distributed import Client

    return Client(address, timeout=f"{max(timeout, 5):.0f}s", set_as_default=False)


def worker_names(client) -> set[str]:
    """Names of the workers the scheduler has now."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return {str(info.get("name")) for info in workers}


@contextlib.contextmanager
def dask_worker(
    address: str,
    *,
    name: str,
    nthreads: int = 1,
    resources: str | None = "grader=1",
    env: Mapping[str, str | None] | None = None,
    nanny: bool = True,
    tmp_dir: Path | None = None,
    timeout: float = 60.0,
    wait: bool = True,
    extra_args: Sequence[str] = (),
) -> Iterator[DaskWorker]:
    """A real ``dask worker`` joined to ``address``; yields its handle.

    With ``nanny=True`` (the default, as ``dask worker`` runs in production) a worker process
    that dies is restarted by its nanny and the scheduler reschedules its tasks; ``kill()``
    kills the worker process, not the nanny. ``wait``: return only once the scheduler lists a
    worker of this name (bounded by ``timeout``). ``env``: as for ``dask_scheduler``. Working
    directory and first PYTHONPATH entry: the repository, so that ``autograder`` (its worker
    plugin) imports.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"dask-worker-{name}-", dir=tmp_dir))
    server = None
    try:
        argv = _python_m("distributed.cli.dask_worker") + [
            address,
            "--host",
            HOST,
            "--name",
            name,
            "--nthreads",
            str(nthreads),
            # --no-dashboard alone still leaves an HTTP server on 0.0.0.0 (as for the scheduler).
            "--no-dashboard",
            "--dashboard-address",
            f"{HOST}:0",
            "--local-directory",
            str(folder),
            "--nanny" if nanny else "--no-nanny",
        ]
        if resources:
            argv += ["--resources", resources]
        server = start(
            f"dask worker {name}",
            argv + list(extra_args),
            log=folder / "worker.log",
            cwd=REPO_ROOT,
            env=_base_env(env),
            cls=DaskWorker,
        )
        server.worker_name, server.nanny = name, nanny
        if wait:
            with _client(address, timeout) as client:

                def joined():
                    if server.popen.poll() is not None:
                        raise RuntimeError(f"dask worker {name} exited:\n{server.log_tail()}")
                    return name in worker_names(client)

                wait_until(joined, timeout, f"dask worker {name} joining {address}", 0.2)
        yield server
    finally:
        if server is not None:
            server.stop(15.0)
        # Keep the log (worker.log) when the caller gave a folder; the rest is scratch.
        if tmp_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class DaskCluster:
    address: str
    scheduler: DaskScheduler
    workers: list[DaskWorker]

    def client(self, timeout: float = 30.0):
        """A ``distributed.Client`` of this cluster (use it in a ``with``)."""
        return _client(self.address, timeout)


@contextlib.contextmanager
def dask_cluster(
    n_workers: int = 2,
    *,
    resources: str | None = "grader=1",
    scheduler_env: Mapping[str, str | None] | None = None,
    worker_env: Mapping[str, str | None] | None = None,
    nanny: bool = True,
    tmp_dir: Path | None = None,
    timeout: float = 90.0,
) -> Iterator[DaskCluster]:
    """A scheduler and ``n_workers`` workers (``worker-0``, ``worker-1``, ...), started side by
    side; yields once ``Client.wait_for_workers(n_workers)`` says all joined. Stopped workers
    first, then the scheduler.
    """
    with contextlib.ExitStack() as stack:
        address, scheduler = stack.enter_context(
            dask_scheduler(env=scheduler_env, tmp_dir=tmp_dir, timeout=timeout)
        )
        workers = [
            stack.enter_context(
                dask_worker(
                    address,
                    name=f"worker-{index}",
                    resources=resources,
                    env=worker_env,
                    nanny=nanny,
                    tmp_dir=tmp_dir,
                    wait=False,
                )
            )
            for index in range(n_workers)
        ]
        with _client(address, timeout) as client:
            try:
                client.wait_for_workers(n_workers, timeout=timeout)
            except TimeoutError as error:
                logs = "\n".join(f"--- {w.name}\n{w.log_tail(15)}" for w in workers)
                raise TimeoutError(
                    f"{n_workers} Dask workers did not join: {error}\n{logs}"
                ) from error
        yield DaskCluster(address, scheduler, workers)


# --- Slurm ----------------------------------------------------------------------------------

SLURM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _slurm_program(name: str) -> str:
    found = shutil.which(name, path=SLURM_PATH + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: apt-get install slurmctld slurmd slurm-client munge "
            "(.ci/run does)"
        )
    return found


def processes_with_env(variable: str, value: str) -> list[int]:
    """Live processes whose environment holds ``variable=value`` exactly (this one excepted)."""
    needle = f"{variable}={value}".encode()
    found = []
    for pid in _live_stats():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


@dataclass
class SlurmCluster:
    """A single-node Slurm of its own: ``munged``, ``slurmctld`` and ``slurmd`` processes."""

    folder: Path
    conf: Path
    node: str
    env: dict[str, str]
    munged: Server
    slurmctld: Server
    slurmd: Server

    def run(self, *argv: str, timeout: float = 30.0) -> str:
        """Run a Slurm command (``squeue``, ``sbatch``, ...) against this cluster; its stdout."""
        result = subprocess.run(
            [_slurm_program(argv[0]), *argv[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr}")
        return result.stdout

    def job_ids(self) -> list[str]:
        return self.run("squeue", "--noheader", "--format=%i").split()

    def job_processes(self) -> list[int]:
        """Processes of this cluster's jobs: each ``slurmstepd`` and what runs under it. They
        leave the daemons' process groups (slurmstepd daemonizes), so they are found by the
        ``SLURM_CONF`` naming this cluster's configuration in their environment."""
        daemons = {
            pid
            for server in (self.munged, self.slurmctld, self.slurmd)
            for pid in server.processes()  # slurmctld's slurmscriptd is one of them
        }
        return [
            pid for pid in processes_with_env("SLURM_CONF", str(self.conf)) if pid not in daemons
        ]


def _slurm_ready(cluster: SlurmCluster, what: str) -> Callable[[], bool]:
    def check() -> bool:
        for server in (cluster.munged, cluster.slurmctld, cluster.slurmd):
            if server.popen.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            if what == "controller":
                return "is UP" in cluster.run("scontrol", "ping", timeout=10)
            state = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", timeout=10)
            return state.strip() == "idle"
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    return check


def _slurm_conf(base: Path, node: str, user: str, socket_path: Path, ports: tuple[int, int]) -> str:
    """slurm.conf of a single-node cluster in ``base`` on 127.0.0.1, ports ``ports``."""
    memory_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return (
        "\n".join(
            [
                "ClusterName=autograder-test",
                f"SlurmctldHost={node}({HOST})",
                f"SlurmctldPort={ports[0]}",
                f"SlurmdPort={ports[1]}",
                f"SlurmUser={user}",
                f"SlurmdUser={user}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={socket_path}",
                f"StateSaveLocation={base / 'state'}",
                f"SlurmdSpoolDir={base / 'spool'}",
                f"SlurmctldPidFile={base / 'slurmctld.pid'}",
                f"SlurmdPidFile={base / 'slurmd.pid'}",
                # No cgroups and no systemd: processes are tracked through their parents.
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "MpiDefault=none",
                "MailProg=/bin/true",
                "SchedulerType=sched/builtin",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                f"NodeName={node} NodeAddr={HOST} CPUs={os.cpu_count()} "
                f"RealMemory={memory_mb // 2} State=UNKNOWN",
                "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            ]
        )
        + "\n"
    )


@contextlib.contextmanager
def slurm_cluster(tmp_dir: Path | None = None, *, timeout: float = 60.0) -> Iterator[SlurmCluster]:
    """A single-node Slurm started from a generated ``slurm.conf``; yields a ``SlurmCluster``.

    ``munged`` (its own key and socket), ``slurmctld`` and ``slurmd`` run in the foreground as
    processes of this module (own process groups, recorded), on 127.0.0.1 and free ports, with
    no systemd and no cgroups (``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``),
    as the current user (tested as root). Its folder is a fresh one under the system temporary
    directory (munged wants every folder above its socket open to all); logs go to ``tmp_dir``
    when given. While it runs, ``SLURM_CONF`` in ``os.environ`` names its configuration, so
    that ``sbatch`` and ``scancel`` run by ``dask_jobqueue.SLURMCluster`` reach it. On exit:
    its jobs are cancelled, their processes killed, the daemons stopped, and it is checked that
    no process of it is left.
    """
    munged = _slurm_program("munged")
    slurmctld = _slurm_program("slurmctld")
    slurmd = _slurm_program("slurmd")
    user = pwd.getpwuid(os.geteuid()).pw_name
    base = Path(tempfile.mkdtemp(prefix="autograder-slurm-"))
    base.chmod(0o755)
    logs = Path(tmp_dir) if tmp_dir is not None else base
    conf = base / "slurm.conf"
    env = dict(os.environ, SLURM_CONF=str(conf), PATH=SLURM_PATH + ":" + os.environ["PATH"])
    previous = os.environ.get("SLURM_CONF")
    started_here: list[Server] = []
    cluster = None
    try:
        for sub in ("state", "spool"):
            (base / sub).mkdir(mode=0o700)
        key = base / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = base / "munge.socket"
        node = socket.gethostname().split(".")[0]
        daemon = start(
            "munged",
            [munged, "--foreground", f"--socket={socket_path}", f"--key-file={key}"]
            + [f"--pid-file={base / 'munged.pid'}", f"--log-file={base / 'munged.log'}"]
            + [f"--seed-file={base / 'munged.seed'}"],
            log=logs / "munged.log",
            cwd=base,
            env=env,
        )
        started_here.append(daemon)
        wait_until(
            lambda: socket_path.exists() or daemon.popen.poll() is not None, timeout, "munged"
        )
        if daemon.popen.poll() is not None:
            raise RuntimeError(f"munged exited:\n{daemon.log_tail()}")
        # The ports were free a moment ago; one taken in between is tried again with others.
        for attempt in range(3):
            ports = (free_port(), free_port())
            conf.write_text(_slurm_conf(base, node, user, socket_path, ports))
            controller = start(
                "slurmctld",
                [slurmctld, "-D", "-f", conf],
                log=logs / "slurmctld.log",
                cwd=base,
                env=env,
            )
            node_daemon = start(
                "slurmd",
                [slurmd, "-D", "-f", conf, "-N", node],
                log=logs / "slurmd.log",
                cwd=base,
                env=env,
            )
            started_here += [controller, node_daemon]
            cluster = SlurmCluster(base, conf, node, env, daemon, controller, node_daemon)
            try:
                wait_until(_slurm_ready(cluster, "controller"), timeout, "slurmctld answering", 0.3)
                wait_until(_slurm_ready(cluster, "node"), timeout, f"node {node} idle", 0.3)
                break
            except RuntimeError as error:
                if "already in use" not in str(error) or attempt == 2:
                    raise
                for server in (node_daemon, controller):
                    server.stop(15.0)
                    started_here.remove(server)
        os.environ["SLURM_CONF"] = str(conf)
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        problems = []
        if cluster is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                ids = cluster.job_ids()
                if ids:
                    cluster.run("scancel", *ids)
            # Cancelled jobs end within seconds; what is left is killed.
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not cluster.job_processes(), 15, "jobs ending")
            for pid in cluster.job_processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for server in reversed(started_here):
            try:
                server.stop(15.0)
            except RuntimeError as error:
                problems.append(str(error))
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not processes_with_env("SLURM_CONF", str(conf)), 10, "Slurm gone")
        left = processes_with_env("SLURM_CONF", str(conf))
        if left:
            problems.append("left running: " + "; ".join(f"{p} {cmdline(p)}" for p in left))
        shutil.rmtree(base, ignore_errors=True)
        if problems and sys.exc_info()[0] is None:  # never hide the error that ended the test
            raise RuntimeError("Slurm did not stop cleanly: " + " | ".join(problems))


# --- The submission service (uvicorn) -------------------------------------------------------

SERVE_SCRIPT = """
import sys
from pathlib import Path
from autograder import course
from autograder.cli import main
course.REPO_ROOT = Path(sys.argv[1])
sys.exit(main(sys.argv[2:]))
"""
"""``python -m autograder`` with ``course.REPO_ROOT`` set first (a test's stand-in exercise)."""


@dataclass
class ServiceServer(Server):
    """``python -m autograder serve`` (uvicorn, and its embedded Dask cluster unless
    ``--scheduler``); ``url`` is its address; ``kill(sig)`` signals the uvicorn process."""

    url: str = ""


@contextlib.contextmanager
def uvicorn_server(
    course_dir: Path,
    *,
    repo_root: Path | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    tmp_dir: Path | None = None,
    timeout: float = 120.0,
    name: str = "service",
) -> Iterator[ServiceServer]:
    """The submission service on 127.0.0.1 and a free port, serving ``course_dir``; yields
    once ``GET /healthz`` answers 200 (the database and the grading engine are up).

    ``repo_root``: the exercises' root for ``course.REPO_ROOT`` (default: the repository);
    ``args``: more ``serve`` options (``--jobs 2``, ``--daily-cap 3``, ``--scheduler ...``).
    The log (``<name>.log``) stays in ``tmp_dir`` when given.
    """
    import urllib.error
    import urllib.request

    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_dir))
    server = None
    try:
        for _attempt in range(3):  # a free port taken meanwhile by another process: again
            port = free_port()
            argv = [sys.executable, "-c", SERVE_SCRIPT, str(repo_root or REPO_ROOT), "serve"]
            argv += ["--course-dir", str(course_dir), "--host", HOST, "--port", str(port)]
            server = start(
                name,
                argv + list(args),
                log=folder / f"{name}.log",
                cwd=REPO_ROOT,
                env=_base_env(env),
                cls=ServiceServer,
            )
            server.url = f"http://{HOST}:{port}"

            def healthy(server: ServiceServer = server):
                if server.popen.poll() is not None:
                    return "exited"
                with contextlib.suppress(OSError, urllib.error.HTTPError):
                    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as answer:
                        return answer.status == 200
                return False

            if wait_until(healthy, timeout, f"{name} at {server.url}", 0.2) is True:
                break
            if "address already in use" not in server.log_tail().lower():
                raise RuntimeError(f"{name} exited:\n{server.log_tail()}")
            server.stop(15.0)
        yield server
    finally:
        if server is not None:
            server.stop(30.0)
        if tmp_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
