"""A stand-in graded exercise and a corpus of bad and hostile submissions for ``grade``.

The stand-in exercise has the shape of exercise_08 (one notebook ``autoencoder.ipynb`` with a
solution cell and two graded test cells worth 25 points each, a student module, a given helper,
the real ``model_rules.py``) and is graded like it, hidden-accuracy check included, but its
notebook runs in a second. nbgrader's markers are built from pieces on purpose.

Every corpus entry is made by code from the released notebook: :func:`corpus` returns
``{kind: files}`` where ``files`` maps paths inside the zip to their bytes, and
:func:`make_models` writes the models (a good one trained on the training images in a few
seconds, and one per broken model rule, exported with ``torch.export`` directly so that
``save_model``'s checks do not stop them).
"""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from autograder_standin import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    nbgrader_cell,
    notebook_document,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_EXERCISE = REPO_ROOT / "exercise_08"
NOTEBOOK = "autoencoder.ipynb"
STUDENT_CELL = 2
"""Index of the solution cell that the behaviour entries fill with their code."""

ANSWER_SOURCE = f'''"""Student module of the stand-in exercise."""


def answer():
    """Return the answer."""
    {BEGIN_SOLUTION}
    return 6 * 7
    {END_SOLUTION}
'''

HELPER = '''"""Given helper of the stand-in exercise (restored from source when grading)."""


def check_answer(value):
    """Raise unless value is the answer."""
    assert value == 42, f"answer() returned {value!r}, expected 42"
'''


def source_notebook() -> dict:
    cells = [
        nbgrader_cell("markdown", "# Stand-in exercise\nImplement `answer`."),
        nbgrader_cell(
            "code",
            "from exercise_code.answer import answer\n"
            "from exercise_code.helpers import check_answer",
            grade_id="imports",
            locked=True,
        ),
        nbgrader_cell(
            "code",
            f"{BEGIN_SOLUTION}\nvalue = answer()\n{END_SOLUTION}",
            grade_id="student_code",
            solution=True,
        ),
        nbgrader_cell(
            "code",
            "# 25 points: answer() is right\ncheck_answer(answer())",
            grade_id="test_answer",
            grade=True,
            locked=True,
            points=25,
        ),
        nbgrader_cell(
            "code",
            f"# 25 points: value is right\nassert value == 42, 'value must be 42'\n"
            f"{BEGIN_HIDDEN}\nassert value + 0 == 42\n{END_HIDDEN}",
            grade_id="test_value",
            grade=True,
            locked=True,
            points=25,
        ),
    ]
    return notebook_document(cells)


def make_exercise(repo_root: Path, name: str = "exercise_08") -> Path:
    """Write the stand-in exercise as ``repo_root/name``."""
    folder = Path(repo_root) / name
    code = folder / "exercise_code"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("")
    (code / "answer.py").write_text(ANSWER_SOURCE)
    (code / "helpers.py").write_text(HELPER)
    shutil.copyfile(REAL_EXERCISE / "exercise_code" / "model_rules.py", code / "model_rules.py")
    (folder / NOTEBOOK).write_text(json.dumps(source_notebook(), indent=1))
    return folder


# ----------------------------------------------------------------------------- models


def _export(module, path: Path, example) -> None:
    import torch

    dim = torch.export.Dim("batch", min=1, max=100_000)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: dim},))
    torch.export.save(program, path)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/autograder-corpus-pwned",))


def make_models(folder: Path, train_images, train_labels) -> dict[str, Path]:
    """Write every corpus model into ``folder``; returns ``{name: path}``.

    ``train_images`` uint8 (N, 28, 28) and ``train_labels`` (N,) train the good model.
    """
    import torch
    from torch import nn

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    x = torch.from_numpy(train_images[:6000].astype("float32") / 255.0).reshape(-1, 784)
    y = torch.from_numpy(train_labels[:6000].astype("int64"))
    linear = nn.Linear(784, 10)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.cross_entropy(linear(x), y).backward()
        optimizer.step()
    image = torch.rand(4, 1, 28, 28)

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
            table = torch.randint(-128, 127, (5_100_000,), dtype=torch.int8)
            self.register_buffer("table", table)

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

    paths = {name: folder / f"{name}.pt2" for name in MODEL_KINDS}
    _export(Scaled(1.0), paths["good"], image)
    _export(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), paths["untrained"], image)
    _export(
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(1352, 10)), paths["conv"], image
    )
    _export(Buffered(), paths["too_many_parameters"], image)
    _export(Wide(), paths["too_large_file"], image)
    _export(nn.Sequential(nn.Flatten(), nn.Linear(784, 5)), paths["wrong_shape"], image)
    _export(Scaled(float("nan")), paths["nan_outputs"], image)
    _export(Scaled(float("inf")), paths["inf_outputs"], image)
    _export(nn.Linear(784, 10), paths["flattened_input"], torch.rand(4, 784))
    paths["not_pt2"].write_bytes(b"this is a text file, not a model\n" * 10)
    paths["pickle_payload"].write_bytes(pickle.dumps(_Evil()))
    return paths


def corpus_context(work_dir: Path, course_dir: Path, data_dir: Path) -> dict:
    """What :func:`corpus` needs: models trained on ``data_dir``'s training images, and paths."""
    from autograder.exercise_modules import exercise_code_module

    files = exercise_code_module("exercise_08", "mnist_files")
    raw = Path(data_dir) / "MNIST" / "raw"
    models = make_models(
        Path(work_dir) / "models",
        files.read_idx(raw / "train-images-idx3-ubyte"),
        files.read_idx(raw / "train-labels-idx1-ubyte"),
    )
    return {"models": models, "course_dir": course_dir, "data_dir": data_dir}


MODEL_KINDS = (
    "good",
    "untrained",
    "not_pt2",
    "pickle_payload",
    "conv",
    "too_many_parameters",
    "too_large_file",
    "wrong_shape",
    "nan_outputs",
    "inf_outputs",
    "flattened_input",
)


# ----------------------------------------------------------------------------- submissions


def _student_notebook(released: dict, code: str | None = None) -> dict:
    notebook = json.loads(json.dumps(released))
    notebook["cells"][STUDENT_CELL]["source"] = code if code is not None else "value = answer()"
    return notebook


def good_files(release_dir: Path, model: Path) -> dict[str, bytes]:
    """A complete, correct submission: the released files with the answers filled in."""
    files = {
        p.relative_to(release_dir).as_posix(): p.read_bytes()
        for p in sorted(release_dir.rglob("*"))
        if p.is_file()
    }
    released = json.loads(files[NOTEBOOK])
    files[NOTEBOOK] = json.dumps(_student_notebook(released)).encode()
    files["exercise_code/answer.py"] = b"def answer():\n    return 42\n"
    files["models/classifier.pt2"] = model.read_bytes()
    return files


def _with_code(code: str) -> Callable[[dict, dict], dict]:
    def change(files: dict, context: dict) -> dict:
        notebook = json.loads(files[NOTEBOOK])
        notebook["cells"][STUDENT_CELL]["source"] = code + "\nvalue = answer()"
        return {**files, NOTEBOOK: json.dumps(notebook).encode()}

    return change


def _with_model(name: str) -> Callable[[dict, dict], dict]:
    def change(files: dict, context: dict) -> dict:
        return {**files, "models/classifier.pt2": context["models"][name].read_bytes()}

    return change


def _without(path: str) -> Callable[[dict, dict], dict]:
    return lambda files, context: {k: v for k, v in files.items() if k != path}


def _renamed(files: dict, context: dict) -> dict:
    files = dict(files)
    files["autoencoder_final.ipynb"] = files.pop(NOTEBOOK)
    return files


def _graded_cells_deleted(files: dict, context: dict) -> dict:
    notebook = json.loads(files[NOTEBOOK])
    notebook["cells"] = [
        c for c in notebook["cells"] if not c["metadata"].get("nbgrader", {}).get("grade")
    ]
    return {**files, NOTEBOOK: json.dumps(notebook).encode()}


def _graded_cells_edited(files: dict, context: dict) -> dict:
    """A wrong answer, with the test cells edited so that they would pass."""
    notebook = json.loads(files[NOTEBOOK])
    for cell in notebook["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade"):
            cell["source"] = "pass  # tests edited away"
    return {
        **files,
        NOTEBOOK: json.dumps(notebook).encode(),
        "exercise_code/answer.py": b"def answer():\n    return 41\n",
    }


def _tamper_code(context: dict) -> str:
    """Code that tries to change grades and other students' files from inside the kernel."""
    course_dir = context["course_dir"]
    return f"""
import glob, os, sqlite3
targets = [{str(course_dir / "gradebook.db")!r}]
targets += glob.glob({str(course_dir)!r} + '/**', recursive=True)
targets += glob.glob('/tmp/autograder-grade-*/*/course/submitted/*/*/*.ipynb')
changed = []
for target in targets:
    try:
        with open(target, 'ab') as handle:
            handle.write(b'tampered')
        changed.append(target)
    except OSError:
        pass
for db in glob.glob('../../../gradebook.db') + glob.glob('../../gradebook.db'):
    try:
        connection = sqlite3.connect(db)
        connection.execute('UPDATE grade SET auto_score = 1000')
        connection.commit()
    except sqlite3.Error:
        pass
for litter in ('/tmp/autograder-corpus-litter', '/var/tmp/autograder-corpus-litter'):
    with open(litter, 'w') as handle:
        handle.write('left behind')
print('TAMPERED' if changed else 'tampering refused')
"""


def _search_code(context: dict) -> str:
    data_dir = context["data_dir"]
    return f"""
import os, time
found = []
start = time.time()
for top in ('/work', '/tmp', '/root', '/home', {str(data_dir)!r}):
    for folder, dirs, names in os.walk(top):
        if time.time() - start > 5:
            break
        for name in names:
            if 't10k' in name or name == 'hidden_test.json':
                try:
                    with open(os.path.join(folder, name), 'rb') as handle:
                        handle.read(16)
                    found.append(os.path.join(folder, name))
                except OSError:
                    pass
try:
    with open({str(REPO_ROOT / ".git" / "HEAD")!r}, 'rb') as handle:
        handle.read(16)
    found.append('.git')
except OSError:
    pass
try:
    if os.listdir({str(REAL_EXERCISE / "exercise_code")!r}):
        found.append('exercise source')
except OSError:
    pass
print('LEAKED ' + ' '.join(found) if found else 'no hidden labels readable')
"""


NETWORK_CODE = """
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

UNSTOPPABLE_LOOP = """
while True:
    try:
        while True:
            pass
    except KeyboardInterrupt:
        pass
"""


def _untouched(files: dict, context: dict) -> dict:
    """The released files as they are: stubs, no model."""
    release_dir = context["course_dir"] / "release" / "exercise_08"
    return {
        p.relative_to(release_dir).as_posix(): p.read_bytes()
        for p in sorted(release_dir.rglob("*"))
        if p.is_file()
    }


WARNING_ANSWER = b"""import sys


def answer():
    print("answer(): computing", file=sys.stderr)
    return 42
"""

CHANGES: dict[str, Callable[[dict, dict], dict]] = {
    "good": lambda files, context: files,
    "untouched": _untouched,
    "stderr_in_test": lambda files, context: {
        **files,
        "exercise_code/answer.py": WARNING_ANSWER,
    },
    "notebook_missing": _without(NOTEBOOK),
    "notebook_renamed": _renamed,
    "notebook_not_json": lambda files, context: {**files, NOTEBOOK: b'{"cells": [ not json'},
    "graded_cells_deleted": _graded_cells_deleted,
    "graded_cells_edited": _graded_cells_edited,
    "exercise_code_missing": _without("exercise_code/answer.py"),
    "exercise_code_raises": lambda files, context: {
        **files,
        "exercise_code/answer.py": b"raise RuntimeError('half-written module')\n",
    },
    "model_missing": _without("models/classifier.pt2"),
    **{f"model_{name}": _with_model(name) for name in MODEL_KINDS if name != "good"},
    "infinite_loop": _with_code(UNSTOPPABLE_LOOP),
    "kernel_kills_itself": _with_code("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
    "memory_blowup": _with_code("hog = []\nwhile True:\n    hog.append(bytearray(2**27))"),
    "megabytes_of_printing": _with_code("for i in range(100_000):\n    print('x' * 100)"),
    "fills_the_disk": _with_code(
        "import itertools\nfor i in itertools.count():\n"
        "    open(f'filler{i}.bin', 'wb').write(b'x' * 2**24)"
    ),
    "writes_gradebook_and_others": lambda files, context: _with_code(_tamper_code(context))(
        files, context
    ),
    "searches_hidden_labels": lambda files, context: _with_code(_search_code(context))(
        files, context
    ),
    "tries_network": _with_code(NETWORK_CODE),
}
"""kind -> how the submission differs from the good one."""


def corpus(release_dir: Path, context: dict, kinds: list[str] | None = None) -> dict:
    """``{kind: files}`` for ``kinds`` (default: all of :data:`CHANGES`).

    ``context`` holds ``models`` (from :func:`make_models`), ``course_dir`` and ``data_dir``.
    """
    base = good_files(release_dir, context["models"]["good"])
    return {kind: CHANGES[kind](base, context) for kind in (kinds or list(CHANGES))}


def write_zip(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return path
