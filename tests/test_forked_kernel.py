"""The kernel forked from the notebook run (autograder/sandbox/forked_kernel.py), outside any
sandbox: it runs a notebook as a started kernel would, dies visibly, and leaves nothing behind.
(Inside the sandbox it runs in every real grading: tests/test_autograder_demo.py and the
corpus.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[1] / "autograder" / "sandbox"

SCRIPT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import forked_kernel
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

cells = [nbformat.v4.new_code_cell(source) for source in json.loads(sys.argv[2])]
notebook = nbformat.v4.new_notebook(cells=cells)
client = NotebookClient(notebook, kernel_manager_class=forked_kernel.ForkedKernelManager,
                        resources={"metadata": {"path": sys.argv[3]}}, timeout=60,
                        allow_errors=True)
os.environ["SEEN_BY_THE_KERNEL"] = "yes"
result = {"parent": os.getpid()}
try:
    client.execute()
except DeadKernelError as error:
    result["dead"] = str(error)[:200]
result["outputs"] = [
    "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in c.outputs)
    for c in notebook.cells
]
print("RESULT " + json.dumps(result))
"""


def _run(tmp_path: Path, *cells: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(SANDBOX), json.dumps(cells), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_the_forked_kernel_runs_cells_like_a_started_one(tmp_path):
    (tmp_path / "helper_module.py").write_text("VALUE = 42\n")
    result = _run(
        tmp_path,
        "import os; print(os.getppid(), os.getpid() == os.getpgid(0))",
        "import helper_module; print(helper_module.VALUE)",
        "print(os.getcwd(), os.environ.get('SEEN_BY_THE_KERNEL'))",
        "import sys; print(any(p.endswith('autograder/sandbox') for p in sys.path))",
        "1 / 0",
        "21 * 2",
    )
    parent, own_group = result["outputs"][0].split()
    assert int(parent) == result["parent"] and own_group == "True"  # forked, its own group
    assert result["outputs"][1].strip() == "42"  # the notebook's folder is on the path
    assert result["outputs"][2].split() == [str(tmp_path), "yes"]
    assert result["outputs"][3].strip() == "False"  # nothing of the grader's on the path
    assert result["outputs"][5].strip() == "42"  # an error in a cell did not stop the kernel
    assert "dead" not in result


def test_a_kernel_that_kills_itself_is_reported_dead(tmp_path):
    result = _run(tmp_path, "print('before')", "import os, signal; os.kill(os.getpid(), 9)")
    assert "dead" in result
    assert result["outputs"][0].strip() == "before"


def test_autoreload_still_reloads_the_notebooks_modules_but_not_the_preloaded_ones(tmp_path):
    """``%autoreload 2`` (which the notebooks run) reloads a module the notebook imported when
    its file changes; the modules the kernel was forked with (the grader's libraries) are never
    statted before each cell."""
    (tmp_path / "helper_module.py").write_text("VALUE = 42\n")
    result = _run(
        tmp_path,
        "%load_ext autoreload\n%autoreload 2",
        "import helper_module; print(helper_module.VALUE)",
        "import os, pathlib\n"
        "path = pathlib.Path('helper_module.py'); path.write_text('VALUE = 43\\n')\n"
        "os.utime(path, (os.stat(path).st_atime, os.stat(path).st_mtime + 10))",
        "print(helper_module.VALUE)",
        "import sys\nfrom IPython.extensions.autoreload import ModuleReloader\n"
        "reloader = ModuleReloader()\n"
        "print(reloader.filename_and_mtime(sys.modules['nbclient']) == (None, None),"
        " reloader.filename_and_mtime(helper_module)[0] is not None)",
    )
    assert result["outputs"][1].strip() == "42"
    assert result["outputs"][3].strip() == "43"  # the changed module was reloaded
    assert result["outputs"][4].split() == ["True", "True"]  # preloaded: skipped; notebook's: not
