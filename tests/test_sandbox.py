"""The sandbox (autograder/sandbox/): what a job sees, what it may do, and that it ends whole.

Each defence has a test that fails when the defence is removed: the kill must find and kill real
processes (checked on the whole machine by user id and by mark), the limits must be hit, the
read-only world must refuse writes that the machine itself would allow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hostile_code as hostile
import numpy as np
import pytest

from autograder.sandbox import (
    Sandbox,
    SandboxError,
    WarmParent,
    cgroups,
    clear_user,
    processes_of,
    reserved_uids,
    run_sandboxed,
    scrubbed_env,
    support,
    untrusted,
)
from autograder.sandbox.isolate import SCRATCH_DIRS

ROOT = Path(__file__).resolve().parents[1]
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="full isolation needs root")
CGROUPS = pytest.mark.skipif(
    not support().cgroups.used(), reason="no usable cgroup hierarchy on this machine"
)


@pytest.fixture
def open_tmp():
    """A temporary folder that other users may enter (pytest's own is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="autograder-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def slot():
    with reserved_uids(1) as (uid,):
        yield uid


def _work(folder: Path, uid: int | None) -> Path:
    work = folder / "work"
    work.mkdir()
    if uid is not None:
        os.chown(work, uid, uid)
    return work


def _run(code: str, work: Path, uid: int | None, **limits) -> tuple:
    sandbox = Sandbox(
        limits.pop("timeout_s", 60), limits.pop("memory_bytes", 2**31), uid=uid, **limits
    )
    outcome = run_sandboxed(
        [sys.executable, "-c", code], sandbox, work, scrubbed_env(work), work.parent / "log"
    )
    return outcome


# ----------------------------------------------------------------------------- the world


WORLD_PROBE = f"""
import ctypes, json, os, socket
report = {{"uid": os.getuid(), "hostname": socket.gethostname()}}
report["pids"] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
writable = []
for top in ['/', '/etc', '/usr', '/var', '/run', '/run/lock', '/dev', '/dev/shm', '/tmp',
            '/var/tmp', '/root', '/home', '/opt', '/srv', '/sys/fs/cgroup', os.getcwd(),
            *HIDDEN_AND_OUTSIDE]:
    for folder, dirs, names in os.walk(top):
        if folder.startswith(('/proc', '/sys/kernel')) or folder.count('/') - top.count('/') >= 2:
            dirs[:] = []
        path = os.path.join(folder, '{hostile.ESCAPE_MARK}')
        try:
            open(path, 'w').close()
            os.remove(path)
            writable.append(folder)
        except OSError:
            pass
report["writable"] = sorted(set(writable))
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2)
    report["network"] = "reached"
except OSError:
    report["network"] = "refused"
report["hidden"] = {{p: os.listdir(p) if os.path.isdir(p) else open(p).read() for p in HIDDEN}}
libc = ctypes.CDLL(None)
report["shm"] = libc.shmget(0x5A5A, 4096, 0o1666)
print(json.dumps(report))
"""


def _world(work: Path, uid: int | None, hidden: list[Path], outside: list[Path]) -> dict:
    code = f"HIDDEN = {[str(p) for p in hidden]!r}\n"
    code += f"HIDDEN_AND_OUTSIDE = {[str(p) for p in outside]!r}\n"
    outcome = _run(code + WORLD_PROBE, work, uid, hide=tuple(str(p) for p in hidden))
    assert outcome.returncode == 0, outcome.log
    return json.loads(outcome.log.strip().splitlines()[-1])


def _allowed(folder: str, work: Path) -> bool:
    return folder.startswith(str(work)) or any(
        folder == s or folder.startswith(s + "/") for s in SCRATCH_DIRS
    )


@pytest.fixture
def outside_tmp():
    """A folder outside the temporary folders (which every job gets a private copy of)."""
    folder = Path(tempfile.mkdtemp(prefix="autograder-test-", dir="/srv"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@ROOT_ONLY
def test_a_job_sees_a_private_read_only_world_under_its_own_user_id(open_tmp, outside_tmp, slot):
    secret = outside_tmp / "secret"
    secret.mkdir()
    (secret / "labels").write_text("labels")
    outside = outside_tmp / "outside"
    outside.mkdir(mode=0o777)
    outside.chmod(0o777)  # world-writable on the machine: the sandbox must still refuse
    ipc_before = Path("/proc/sysvipc/shm").read_text()
    work = _work(open_tmp, slot)

    report = _world(work, slot, [secret], [outside])

    assert report["uid"] == slot and report["hostname"] == "sandbox"
    assert report["network"] == "refused"
    assert report["hidden"] == {str(secret): []}
    assert len(report["pids"]) <= 3, "only the job's own processes are visible"
    assert [f for f in report["writable"] if not _allowed(f, work)] == []
    assert str(work) in report["writable"]
    assert report["shm"] >= 0 and Path("/proc/sysvipc/shm").read_text() == ipc_before


def test_without_root_a_job_still_gets_namespaces_and_a_read_only_world(open_tmp, outside_tmp):
    """Run as an ordinary user (nobody) through a user namespace, as on a laptop: the job runs
    as that user, so only the read-only world keeps it from the user's own files."""
    own_files = outside_tmp / "the_users_own_files"
    own_files.mkdir()
    script = open_tmp / "run_as_user.py"
    isolate = Path(__file__).resolve().parents[1] / "autograder" / "sandbox" / "isolate.py"
    shutil.copyfile(isolate, open_tmp / "isolate.py")
    work = open_tmp / "work"
    work.mkdir()
    for folder in (work, own_files):
        os.chown(folder, 65534, 65534)
    code = (
        f"HIDDEN = []\nHIDDEN_AND_OUTSIDE = ['/work', '/srv', {str(own_files)!r}]\n" + WORLD_PROBE
    )
    (work / "probe.py").write_text(code)
    spec = {"uid": None, "rw_binds": [str(work)], "cwd": str(work), "limits": {"core": 0}}
    script.write_text(
        "import os, subprocess, sys\n"
        "reader, writer = os.pipe()\n"
        f"job = subprocess.Popen([sys.executable, '-I', {str(open_tmp / 'isolate.py')!r}, "
        "str(reader), '--', sys.executable, 'probe.py'], pass_fds=(reader,))\n"
        f"os.write(writer, {json.dumps(spec).encode()!r})\n"
        "os.close(writer)\n"
        "sys.exit(job.wait())\n"
    )
    if os.geteuid() != 0:
        pytest.skip("the test switches to the user nobody, which needs root")
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["uid"] == 65534 and report["network"] == "refused"
    assert len(report["pids"]) <= 3
    assert [f for f in report["writable"] if not _allowed(f, work)] == []


# ----------------------------------------------------------------------------- the end of a job


SLEEPER = f"[sys.executable, '-c', 'import time; time.sleep(600)', '{hostile.DAEMON_MARK}']"
LEAVE_BEHIND = f"""
import os, subprocess, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, {SLEEPER})
    os._exit(0)
os.wait()
subprocess.Popen({SLEEPER}, start_new_session=True)
print('left two daemons', flush=True)
"""


def _marked() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if hostile.DAEMON_MARK.encode() in command and b"pytest" not in command:
                found.append(int(entry.name))
    return found


def test_a_job_ends_with_every_process_it_started(open_tmp):
    uid = None
    work = _work(open_tmp, uid)
    outcome = _run(LEAVE_BEHIND, work, uid)
    assert outcome.returncode == 0 and "left two daemons" in outcome.log
    assert _marked() == []


@ROOT_ONLY
def test_a_job_that_runs_out_of_time_ends_with_every_process_it_started(open_tmp, slot):
    work = _work(open_tmp, slot)
    outcome = _run(LEAVE_BEHIND + "\nimport time\ntime.sleep(600)", work, slot, timeout_s=3)
    assert outcome.timed_out and outcome.seconds < 30
    assert _marked() == [] and processes_of(slot) == []


@ROOT_ONLY
def test_clear_user_kills_real_survivors_and_says_how_many(slot):
    """The kill that runs before a slot's user id is reused: it must kill (not just ask)."""
    daemons = [
        subprocess.Popen(
            ["/bin/sleep", "600"],
            user=slot,
            group=slot,
            extra_groups=[],
            start_new_session=True,
        )
        for _ in range(3)
    ]
    assert len(processes_of(slot)) == 3

    killed = clear_user(slot)

    assert killed == 3 and processes_of(slot) == []
    assert all(daemon.wait(timeout=10) == -signal.SIGKILL for daemon in daemons)


@CGROUPS
def test_a_cgroup_kill_reaches_processes_that_left_the_process_group(open_tmp):
    job = cgroups.job_cgroup(2**30, 64, support().cgroups)
    try:
        sleeper = f"[sys.executable, '-c', 'import time; time.sleep(600)', '{hostile.DAEMON_MARK}']"
        starter = (
            "import subprocess, sys\n"
            f"for _ in range(3): subprocess.Popen({sleeper}, start_new_session=True)\n"
        )
        launcher = (
            f"import os, sys\nfor path in {job.procs_files!r}:\n"
            "    open(path, 'w').write(str(os.getpid()))\n" + starter
        )
        subprocess.run([sys.executable, "-c", launcher], check=True, timeout=60)
        assert len(_marked()) == 3 and len(job.processes()) == 3
        assert job.kill_all() == 3
        assert _marked() == [] and job.processes() == set()
    finally:
        job.remove()


def test_a_job_that_cannot_be_isolated_is_the_graders_error_and_no_exit_code_can_fake_it(tmp_path):
    missing = tmp_path / "not-there"
    with pytest.raises(SandboxError, match="could not start"):
        run_sandboxed(
            [sys.executable, "-c", "print('never runs')"],
            Sandbox(60, 2**31, rw_binds=(str(missing),)),
            tmp_path,
            scrubbed_env(tmp_path),
            tmp_path / "log",
        )
    outcome = _run("import sys; sys.exit(125)", _work(tmp_path, None), None)
    assert outcome.returncode == 1


# ----------------------------------------------------------------------------- limits


@ROOT_ONLY
@CGROUPS
def test_memory_is_limited_across_all_processes_of_a_job(open_tmp, slot):
    work = _work(open_tmp, slot)
    outcome = _run(hostile.MEMORY_CHILDREN, work, slot, memory_bytes=1024 * 2**20, timeout_s=60)
    assert outcome.over_memory
    assert processes_of(slot) == []


@ROOT_ONLY
def test_a_fork_bomb_hits_the_process_limit_and_leaves_nothing(open_tmp, slot):
    work = _work(open_tmp, slot)
    outcome = _run(hostile.FORK_BOMB, work, slot, timeout_s=5, max_processes=64)
    assert outcome.timed_out
    assert outcome.over_processes or not support().cgroups.pids
    assert processes_of(slot) == [] and _marked() == []


def test_sandbox_timeout_kills_the_whole_job(tmp_path):
    marker = tmp_path / "survivor"
    script = f"sleep 3 && touch {marker} & sleep 60"
    outcome = run_sandboxed(
        ["bash", "-c", script],
        Sandbox(timeout_s=1, memory_bytes=2**31),
        tmp_path,
        scrubbed_env(tmp_path),
        tmp_path / "log",
    )
    time.sleep(4)
    assert outcome.timed_out and not marker.exists()


@pytest.mark.parametrize(
    "writer, limits, expected",
    [
        (
            "open(f'big{i}', 'wb').write(b'x' * 2**22)",
            {"max_disk_bytes": 20 * 2**20},
            "20 MB of files",
        ),
        ("open(f'small{i}', 'w').close()", {"max_disk_entries": 300}, "300 files"),
    ],
)
def test_sandbox_disk_quota_stops_the_command_and_says_what_it_wrote(
    tmp_path, writer, limits, expected
):
    work = tmp_path / "work"
    work.mkdir()
    script = (
        f"import itertools, time\nfor i in itertools.count():\n    {writer}\n    time.sleep(0.001)"
    )
    outcome = run_sandboxed(
        [sys.executable, "-c", script],
        Sandbox(timeout_s=60, memory_bytes=2**31, disk_paths=(str(work),), **limits),
        work,
        scrubbed_env(tmp_path),
        tmp_path / "log",
    )
    assert outcome.over_disk_quota == f"more than {expected}"
    assert not outcome.timed_out and outcome.seconds < 30
    assert outcome.returncode != 0, "the writer was killed"


def test_a_command_within_the_disk_quota_runs_to_its_end(tmp_path):
    outcome = run_sandboxed(
        [sys.executable, "-c", "open('f', 'wb').write(b'x' * 2**20)"],
        Sandbox(timeout_s=60, memory_bytes=2**31, disk_paths=(str(tmp_path),)),
        tmp_path,
        scrubbed_env(tmp_path),
        tmp_path / "log",
    )
    assert (outcome.returncode, outcome.over_disk_quota, outcome.timed_out) == (0, "", False)


def test_cgroup_v2_limits_are_written_where_v2_expects_them(tmp_path):
    """cgroup v2 (current distributions) cannot be mounted beside this machine's v1 memory
    controller, so its files are checked in a stand-in tree."""
    base = tmp_path / "unified" / "autograder"
    base.mkdir(parents=True)
    hierarchy = cgroups.Hierarchy(2, base, frozenset({"memory", "pids", "kill"}))
    job = cgroups.job_cgroup(
        512 * 2**20, 99, cgroups.CgroupPlan(memory=hierarchy, pids=hierarchy, kill=hierarchy)
    )
    (folder,) = job.folders.values()
    assert (folder / "memory.max").read_text() == str(512 * 2**20)
    assert (folder / "pids.max").read_text() == "99"
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (folder / "pids.events").write_text("max 0\n")
    assert job.over_memory() and not job.over_processes()
    assert job.procs_files == [str(folder / "cgroup.procs")]


# ----------------------------------------------------------------------------- the warm parent


def test_payloads_forked_from_the_warm_parent_are_isolated_like_any_job(open_tmp):
    probes = open_tmp / "probes.py"
    probes.write_text(
        "import os, socket\n"
        "def run(check, seed, files):\n"
        "    try:\n"
        "        socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "        network = 'reached'\n"
        "    except OSError:\n"
        "        network = 'refused'\n"
        "    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "    return {'uid': os.getuid(), 'network': network, 'pids': pids, 'seed': seed,\n"
        "            'frozen': __import__('gc').get_freeze_count()}\n"
    )
    warm = WarmParent({"modules": {"probes": str(probes)}})
    try:
        with reserved_uids(1) as (uid,):
            out = _work(open_tmp, uid)
            args = {
                "code": str(open_tmp),
                "files": str(open_tmp),
                "out": str(out),
                "check": "x",
                "seed": 7,
            }
            outcome = warm.run(
                "probe", args, Sandbox(60, 2**31, uid=uid), out, open_tmp / "log", {}
            )
    finally:
        warm.close()
    assert outcome.returncode == 0
    data = untrusted.read_json(out, "data.json", 10_000)
    assert data["network"] == "refused" and data["seed"] == 7
    assert data["uid"] == (uid if uid is not None else os.getuid())
    assert len(data["pids"]) <= 3
    assert data["frozen"] > 0  # what the warm parent imported is left alone by the child's GC


def test_a_payload_cannot_answer_in_the_warm_parents_place(open_tmp):
    """A payload's output goes to its log, never to the channel the grader reads."""
    probes = open_tmp / "probes.py"
    probes.write_text(
        "import os, sys\n"
        "def run(check, seed, files):\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        '            os.write(fd, b\'{"id": 1, "exit": 0}\\n\')\n'
        "        except OSError:\n"
        "            pass\n"
        '    print(\'{"id": 1, "exit": 0}\')\n'
        "    import time; time.sleep(3)\n"
        "    os._exit(3)\n"
    )
    warm = WarmParent({"modules": {"probes": str(probes)}})
    try:
        out = _work(open_tmp, None)
        args = {
            "code": str(open_tmp),
            "files": str(open_tmp),
            "out": str(out),
            "check": "x",
            "seed": 1,
        }
        outcome = warm.run("probe", args, Sandbox(60, 2**31), out, open_tmp / "log", {})
    finally:
        warm.close()
    assert outcome.returncode == 3 and outcome.seconds >= 2.5


def _huge_pages_collapsible() -> bool:
    """Transparent huge pages on, and a kernel with ``MADV_COLLAPSE`` (6.1)."""
    try:
        setting = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return "[never]" not in setting and (major, minor) >= (6, 1)


@pytest.mark.skipif(not _huge_pages_collapsible(), reason="no transparent huge pages to use")
def test_the_warm_parents_memory_sits_in_huge_pages_so_each_fork_copies_little(open_tmp):
    (open_tmp / "probes.py").write_text(SLOW_OR_QUICK_PROBE)
    warm = WarmParent({"modules": {"probes": str(open_tmp / "probes.py")}})
    warm.start()
    try:
        assert warm.ready.wait(120)
        rollup = Path(f"/proc/{warm.pid}/smaps_rollup").read_text().split()
        anonymous = int(rollup[rollup.index("Anonymous:") + 1])
        huge = int(rollup[rollup.index("AnonHugePages:") + 1])
    finally:
        warm.close()
    assert huge > anonymous / 2, (huge, anonymous)  # kB: torch's and Python's imports


SLOW_OR_QUICK_PROBE = (
    "import time\n"
    "def run(check, seed, files):\n"
    "    if check == 'slow':\n"
    "        time.sleep(120)\n"
    "    return {'check': check}\n"
)


def _probe(warm: WarmParent, folder: Path, check: str, uid: int) -> int:
    out = _work(_mkdir(folder / f"{check}-{time.monotonic_ns()}"), uid)
    args = {"code": str(folder), "files": "", "out": str(out), "check": check, "seed": 1}
    sandbox = Sandbox(180, 2**31, uid=uid)
    return warm.run("probe", args, sandbox, out, out.parent / "log", {}).returncode


@ROOT_ONLY
def test_a_shared_warm_parent_serves_other_processes_and_a_killed_one_loses_only_its_jobs(
    open_tmp,
):
    """Workers attach to one warm parent; when one is killed (its connection ends), the jobs it
    started are killed and the other worker's go on."""
    (open_tmp / "probes.py").write_text(SLOW_OR_QUICK_PROBE)
    owner = WarmParent({"modules": {"probes": str(open_tmp / "probes.py")}}, shared=True)
    owner.start()
    staying = WarmParent.attach(owner.address)
    killed = None
    try:
        with reserved_uids(2) as (uid, other_uid):
            out = _work(_mkdir(open_tmp / "slow"), uid)
            killed = subprocess.Popen(
                [sys.executable, "-c", SLOW_JOB_OF_A_WORKER, owner.address, str(open_tmp)]
                + [str(out), str(uid)],
                cwd=ROOT,
            )
            assert wait_for(lambda: processes_of(uid), 60), "the slow job did not start"
            assert _probe(staying, open_tmp, "quick", other_uid) == 0
            assert staying.pid == owner.pid  # one warm parent for all
            killed.kill()
            killed.wait(10)
            assert wait_for(lambda: not processes_of(uid), 5), "a killed worker's job lives on"
            assert _probe(staying, open_tmp, "quick", other_uid) == 0
            assert owner.process.poll() is None
    finally:
        if killed is not None and killed.poll() is None:
            killed.kill()
        staying.close()
        owner.close()


SLOW_JOB_OF_A_WORKER = """
import sys
from pathlib import Path
from autograder.sandbox import Sandbox, WarmParent
address, folder, out, uid = sys.argv[1:]
args = {"code": folder, "files": "", "out": out, "check": "slow", "seed": 1}
warm = WarmParent.attach(address)
warm.run("probe", args, Sandbox(180, 2**31, uid=int(uid)), Path(out), Path(out).parent / "log", {})
"""


@ROOT_ONLY
def test_only_the_graders_own_user_may_fork_from_a_shared_warm_parent(open_tmp, slot):
    """Its socket sits in a folder only root may enter; and even with that folder opened, a
    process of another user id is turned away without an answer."""
    (open_tmp / "probes.py").write_text(SLOW_OR_QUICK_PROBE)
    owner = WarmParent({"modules": {"probes": str(open_tmp / "probes.py")}}, shared=True)
    owner.start()
    try:
        assert owner.ready.wait(60)
        folder = Path(owner.address).parent
        assert (folder.stat().st_mode & 0o777, folder.stat().st_uid) == (0o700, 0)
        assert Path(owner.address).stat().st_mode & 0o777 == 0o600
        folder.chmod(0o711)  # the outer door opened: the inner one must hold
        Path(owner.address).chmod(0o666)
        answer = subprocess.run(
            [sys.executable, "-c", CONNECT_AS_ANOTHER_USER, owner.address, str(slot)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert answer.stdout.strip() == "connected, answer: b''", answer.stdout + answer.stderr
        assert _probe(WarmParent.attach(owner.address), open_tmp, "quick", slot) == 0
    finally:
        owner.close()


CONNECT_AS_ANOTHER_USER = """
import os, socket, sys
os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[2]))
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.settimeout(30)
connection.connect(sys.argv[1])
print("connected, answer:", connection.recv(100))
"""


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


# ----------------------------------------------------------------------------- reading job output


def test_reading_what_a_job_wrote_follows_no_link_and_accepts_regular_files_only(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": true}')
    job = tmp_path / "job"
    (job / "real").mkdir(parents=True)
    (job / "real" / "data.json").write_text('{"ok": 1}')
    (job / "link.json").symlink_to(secret)
    (job / "linked_folder").symlink_to(tmp_path)
    os.mkfifo(job / "fifo.json")
    (job / "big.json").write_bytes(b"{" + b" " * 5000 + b"}")
    np.save(job / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)

    assert untrusted.read_json(job, "real/data.json", 1000) == {"ok": 1}
    assert untrusted.read_json(job, "link.json", 1000) is None
    assert untrusted.read_json(job, "linked_folder/secret.json", 1000) is None
    assert untrusted.read_json(job, "fifo.json", 1000) is None
    assert untrusted.read_bytes(job, "fifo.json", 1000) is None
    assert untrusted.read_bytes(job, "real", 1000) is None
    assert untrusted.read_json(job, "big.json", 1000) is None
    assert untrusted.read_json(job, "../secret.json", 1000) is None
    assert untrusted.read_array(job, "object.npy", 10_000) is None


# ---------------------------------------------------------------- memory without a cgroup


USES_MEMORY = """
import os, time
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = bytearray(160 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(20)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""
"""Three processes of 160 MB each, all of it touched: 480 MB resident together, each process on
its own well below 300 MB."""

RESERVES_ADDRESS_SPACE = """
import mmap, time
reserved = mmap.mmap(-1, 8 * 2**30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, 50 * 2**20, 4096):
    reserved[i] = 1
time.sleep(1.5)
print('done', flush=True)
"""
"""8 GB of address space of which 50 MB are used (what torch's mappings and thread stacks are
like); it must not be stopped under a 300 MB limit."""


@pytest.fixture
def no_memory_cgroup(monkeypatch):
    """The sandbox as on a laptop or in a container without a delegated memory cgroup."""
    from autograder.sandbox import run

    state = run.support()
    monkeypatch.setattr(
        run, "support", lambda: run.Support(state.root, state.namespaces, cgroups.CgroupPlan())
    )


def test_without_a_memory_cgroup_a_job_is_stopped_for_what_it_uses_not_what_it_maps(
    open_tmp, no_memory_cgroup
):
    limits = {"memory_bytes": 300 * 2**20, "timeout_s": 60}
    over = _run(USES_MEMORY, _work(_mkdir(open_tmp / "over"), None), None, **limits)
    assert over.over_memory and not over.timed_out
    assert over.seconds < 15 and over.returncode != 0

    mapped = _run(RESERVES_ADDRESS_SPACE, _work(_mkdir(open_tmp / "mapped"), None), None, **limits)
    assert (mapped.returncode, mapped.over_memory) == (0, False), mapped.log
    assert "done" in mapped.log


def test_without_a_memory_cgroup_a_warm_parent_payload_is_stopped_for_what_it_uses(
    open_tmp, no_memory_cgroup
):
    probes = open_tmp / "probes.py"
    probes.write_text(
        "def run(check, seed, files):\n"
        "    code = {'over': USES, 'mapped': MAPS}[check]\n"
        "    exec(code, {'__name__': 'probe'})\n"
        "    return {'check': check}\n"
        f"USES = {USES_MEMORY!r}\nMAPS = {RESERVES_ADDRESS_SPACE!r}\n"
    )
    warm = WarmParent({"modules": {"probes": str(probes)}})
    outcomes = {}
    try:
        for check in ("over", "mapped"):
            out = _work(_mkdir(open_tmp / check), None)
            args = {"code": str(open_tmp), "files": "", "out": str(out), "check": check, "seed": 1}
            sandbox = Sandbox(60, 300 * 2**20)
            outcomes[check] = warm.run("probe", args, sandbox, out, out.parent / "log", {})
    finally:
        warm.close()
    assert outcomes["over"].over_memory and outcomes["over"].seconds < 15
    assert (outcomes["mapped"].returncode, outcomes["mapped"].over_memory) == (0, False)


def _mkdir(folder: Path) -> Path:
    folder.mkdir()
    return folder
