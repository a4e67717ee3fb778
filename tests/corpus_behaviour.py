"""A stand-in graded exercise and a corpus of bad and hostile submissions for ``grade``.

The stand-in exercise has the shape of exercise_08 (one notebook ``autoencoder.ipynb`` with a
solution cell, two graded test cells worth 25 points each and the 50-point hidden-accuracy cell;
a student module, a given helper, the real ``model_rules.py``; trusted checks in ``grading/``)
and is graded like it, but its notebook runs in a second. nbgrader's markers are built from
pieces on purpose.

Every corpus entry is made by code from the released notebook: :func:`corpus` returns
``{kind: files}`` where ``files`` maps paths inside the zip to their bytes. :func:`make_models`
writes the models: a good one trained in a few seconds, one per broken model rule (exported with
``torch.export`` directly, so that ``save_model``'s checks do not stop them) and crafted archives
(pickles, custom objects, guard code, symbolic-size injection, forbidden operators).
"""

from __future__ import annotations

import functools
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import hostile_code as hostile
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
HIDDEN_TEST_LINE = "assert value + 0 == 42, 'the hidden check of value failed'"
"""A hidden test's source: it must never reach a student's feedback."""

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

PROBES = '''"""Probes of the stand-in exercise (see exercise_08/grading/probes.py).

Each probe keeps what the student's code returned (``RETURNED``), and its public check runs the
notebook's public line on that very value: the student's code runs once per probe.
"""

import json

RETURNED = {}


def probe_answer(seed, files):
    from exercise_code.answer import answer

    try:
        value = answer()
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:300]}
    RETURNED["value"] = value
    return {"value": value if type(value) is int else repr(value)[:100]}


def probe_value(seed, files):
    """Run the notebook's solution cell (it binds ``value``), as the notebook would."""
    try:
        with open(f"{files}/autoencoder.ipynb", encoding="utf-8") as handle:
            cells = json.load(handle)["cells"]
    except FileNotFoundError:
        return {"missing": True}
    except ValueError:
        return {"invalid": True}
    try:
        source = next(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "student_code"
        )
        from exercise_code.answer import answer

        namespace = {"answer": answer}
        exec(compile(source, "student_code", "exec"), namespace)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:300]}
    value = namespace.get("value")
    RETURNED["value"] = value
    return {"value": value if type(value) is int else repr(value)[:100]}


def public_answer(value):
    """The notebook's public line of test_answer: check_answer(answer())."""
    from exercise_code.helpers import check_answer

    check_answer(value)


def public_value(value):
    """The notebook's public line of test_value, after its solution cell."""
    assert value == 42, "value must be 42"


def public_check(check, data):
    """What the cell's public check says on the same code: "passed" or its error's first line."""
    try:
        if "value" not in RETURNED:  # the code raised, or there is no notebook: so does the line
            raise AssertionError(data.get("error") or "no value")
        {"test_answer": public_answer, "test_value": public_value}[check](RETURNED["value"])
    except BaseException as error:
        lines = f"{type(error).__name__}: {error}".strip().splitlines()
        return lines[0][:300]
    return "passed"


def run(check, seed, files):
    data = {"test_answer": probe_answer, "test_value": probe_value}[check](seed, files)
    data["public_check"] = public_check(check, data)
    return data
'''

VERDICTS = '''"""Verdicts of the stand-in exercise (see exercise_08/grading/verdicts.py)."""

import numpy as np


def _judge(what, data, context):
    if data.get("missing"):
        return False, "Your submission has no autoencoder.ipynb; keep the notebook's name."
    if data.get("invalid"):
        return False, "autoencoder.ipynb in your submission is not a valid notebook."
    if "error" in data:
        return False, f"{what} raised {data['error']}."
    if data.get("value") != 42:
        return False, f"{what} is {data.get('value')!r}, expected 42."
    return True, ""


JUDGES = {
    "test_answer": lambda data, context: _judge("answer()", data, context),
    "test_value": lambda data, context: _judge("value", data, context),
}


def judge(check, data, context):
    return JUDGES[check](data, context)


def model_images(context):
    return np.zeros((0, 1, 28, 28), dtype=np.float32)
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
            f"{BEGIN_HIDDEN}\n{HIDDEN_TEST_LINE}\n{END_HIDDEN}",
            grade_id="test_value",
            grade=True,
            locked=True,
            points=25,
        ),
        nbgrader_cell(
            "code",
            "# Hidden test (50 points): set by the grader.\nprint('graded after hand-in')",
            grade_id="hidden_accuracy",
            grade=True,
            locked=True,
            points=50,
        ),
    ]
    return notebook_document(cells)


def make_exercise(repo_root: Path, name: str = "exercise_08") -> Path:
    """Write the stand-in exercise (with its trusted checks) as ``repo_root/name``."""
    folder = Path(repo_root) / name
    code = folder / "exercise_code"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("")
    (code / "answer.py").write_text(ANSWER_SOURCE)
    (code / "helpers.py").write_text(HELPER)
    for module in ("model_rules.py", "data.py", "mnist_files.py"):
        shutil.copyfile(REAL_EXERCISE / "exercise_code" / module, code / module)
    (folder / NOTEBOOK).write_text(json.dumps(source_notebook(), indent=1))
    grading = folder / "grading"
    grading.mkdir()
    (grading / "__init__.py").write_text("")
    (grading / "probes.py").write_text(PROBES)
    (grading / "verdicts.py").write_text(VERDICTS)
    return folder


# ----------------------------------------------------------------------------- models


def _export(module, path: Path, example) -> None:
    import torch

    dim = torch.export.Dim("batch", min=1, max=100_000)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: dim},))
    torch.export.save(program, path)


def _craft(source: Path, target: Path, change: Callable[[str, bytes], bytes | None], extra=None):
    """A copy of the archive ``source`` with each entry passed through ``change(name, data)``
    (None drops it) and ``extra`` entries ``{name below the top folder: bytes}`` added."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as crafted:
        top = original.namelist()[0].split("/")[0]
        for info in original.infolist():
            data = change(info.filename.split("/", 1)[1], original.read(info))
            if data is not None:
                crafted.writestr(info, data)
        for name, data in (extra or {}).items():
            crafted.writestr(f"{top}/{name}", data)
    return target


def _json_edit(entry: str, edit: Callable[[dict], None]) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        if name != entry:
            return data
        value = json.loads(data)
        edit(value)
        return json.dumps(value).encode()

    return change


def robust_classifier(images, labels, width: int = 512):
    """A good classifier in seconds, without gradient descent: a fixed random ReLU layer and a
    linear head fitted by ridge regression on shifted copies of the images (so it copes with the
    hidden set's distortions). Maps flattened images (N, 784) to logits (N, 10)."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(0)
    x = torch.from_numpy(images.astype("float32") / 255.0).unsqueeze(1)
    shifts = [(dy, dx) for dy in range(-3, 4, 2) for dx in range(-3, 4, 2)]
    shifted = torch.cat([torch.roll(x, shift, (2, 3)) for shift in shifts]).flatten(1)
    targets = nn.functional.one_hot(torch.from_numpy(labels.astype("int64")), 10).float()
    hidden = nn.Linear(784, width)
    head = nn.Linear(width, 10)
    with torch.no_grad():
        hidden.weight.copy_(torch.randn(width, 784, generator=generator) * 0.05)
        hidden.bias.copy_(torch.randn(width, generator=generator) * 0.05)
        features = torch.relu(hidden(shifted))
        features = torch.cat([features, torch.ones(len(features), 1)], 1)
        gram = features.T @ features + torch.eye(width + 1)
        solution = torch.linalg.solve(gram, features.T @ targets.repeat(len(shifts), 1))
        head.weight.copy_(solution[:-1].T)
        head.bias.copy_(solution[-1])
    return nn.Sequential(hidden, nn.ReLU(), head)


def make_models(folder: Path, train_images, train_labels) -> dict[str, Path]:
    """Write every corpus model into ``folder``; returns ``{name: path}``.

    ``train_images`` uint8 (N, 28, 28) and ``train_labels`` (N,) train the good model.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    linear = robust_classifier(train_images[:6000], train_labels[:6000])
    image = torch.rand(4, 1, 28, 28)
    paths = {name: folder / f"{name}.pt2" for name in MODEL_KINDS}
    for name, (module, example) in hostile.exported_models(linear, image).items():
        _export(module, paths[name], example)
    paths["not_pt2"].write_bytes(b"this is a text file, not a model\n" * 10)
    paths["pickle_file"].write_bytes(hostile.pickled_payload())
    good = paths["good"]
    weights = "data/weights/model_weights_config.json"
    constants = "data/constants/model_constants_config.json"
    model_json = "models/model.json"
    crafted = {
        "pickled_weights": _craft(good, paths["pickled_weights"], hostile.pickled_weight(weights)),
        "pickled_sample_inputs": _craft(good, paths["pickled_sample_inputs"], hostile.evil_inputs),
        "pickled_constant": _craft(
            good,
            paths["pickled_constant"],
            _json_edit(constants, hostile.add_constant(pickled=True)),
            {"data/constants/tensor_0": hostile.pickled_payload()},
        ),
        "custom_object": _craft(
            good,
            paths["custom_object"],
            _json_edit(constants, hostile.add_custom_object),
            {"data/constants/custom_obj_0": hostile.pickled_payload()},
        ),
        "custom_object_in_graph": _craft(
            good,
            paths["custom_object_in_graph"],
            _json_edit(model_json, hostile.graph_custom_object),
        ),
        "guard_code": _craft(good, paths["guard_code"], _json_edit(model_json, hostile.guard_code)),
        "symbolic_size_code": _craft(good, paths["symbolic_size_code"], hostile.sympy_injection),
        "control_flow": _craft(
            good, paths["control_flow"], _json_edit(model_json, hostile.cond_node)
        ),
        "huge_graph": _craft(good, paths["huge_graph"], _json_edit(model_json, hostile.many_nodes)),
    }
    assert set(crafted) <= set(paths)
    return paths


MODEL_KINDS = (
    "good",
    "untrained",
    "not_pt2",
    "pickle_file",
    "conv",
    "too_many_parameters",
    "too_large_file",
    "wrong_shape",
    "nan_outputs",
    "inf_outputs",
    "flattened_input",
    "pixel_lookup",
    "batch_mixing",
    "batch_norm_training",
    "public_test_lookup",
    "pickled_weights",
    "pickled_sample_inputs",
    "pickled_constant",
    "custom_object",
    "custom_object_in_graph",
    "guard_code",
    "symbolic_size_code",
    "control_flow",
    "huge_graph",
)


HOSTILE_MODEL_KINDS = ("deep_json", "wrong_strides", "type_swapped", "integer_parameter")
"""Models whose bytes attack the validator itself (issue "hostile data"), graded end to end;
kept out of :data:`MODEL_KINDS` (tests/test_model_check.py runs those one by one)."""


def make_hostile_models(folder: Path, good: Path) -> dict[str, Path]:
    """Write the :data:`HOSTILE_MODEL_KINDS` crafted from the ``good`` archive into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = "data/weights/model_weights_config.json"
    changes = {
        "deep_json": hostile.deep_model_json,
        "wrong_strides": _json_edit(weights, hostile.strides_too_few),
        "type_swapped": _json_edit(weights, hostile.tensor_meta_as_text),
        "integer_parameter": _json_edit(weights, hostile.integer_parameter),
    }
    return {name: _craft(good, folder / f"{name}.pt2", change) for name, change in changes.items()}


GRADED_MODEL_KINDS = (
    "untrained",
    "conv",
    "public_test_lookup",
    "pickled_weights",
    "pickled_sample_inputs",
    "guard_code",
)
"""The models graded end to end in the corpus; every model of :data:`MODEL_KINDS` goes through
the model check in ``tests/test_model_check.py``."""


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
    hostile.public_test_lookup_model(models["public_test_lookup"], data_dir)
    crafted = make_hostile_models(Path(work_dir) / "hostile_models", models["good"])
    return {
        "models": models,
        "hostile_models": crafted,
        "course_dir": course_dir,
        "data_dir": data_dir,
    }


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


def with_code(code: str, answer: bytes | None = None) -> Callable[[dict, dict], dict]:
    """The good submission with ``code`` run in the solution cell (before ``value = answer()``)
    and, if given, ``answer`` as the student module."""

    def change(files: dict, context: dict) -> dict:
        notebook = json.loads(files[NOTEBOOK])
        notebook["cells"][STUDENT_CELL]["source"] = code + "\nvalue = answer()"
        changed = {**files, NOTEBOOK: json.dumps(notebook).encode()}
        if answer is not None:
            changed["exercise_code/answer.py"] = answer
        return changed

    return change


def with_context_code(make: Callable[[dict], str], answer: bytes | None = None):
    """Like :func:`with_code`, with code that needs the context (paths of the test run)."""
    return lambda files, context: with_code(make(context), answer)(files, context)


def with_files(extra: dict[str, bytes]) -> Callable[[dict, dict], dict]:
    """The good submission plus (or with replaced) files ``{path in the zip: bytes}``."""
    return lambda files, context: {**files, **extra}


def _with_model(name: str) -> Callable[[dict, dict], dict]:
    def change(files: dict, context: dict) -> dict:
        return {**files, "models/classifier.pt2": context["models"][name].read_bytes()}

    return change


def _with_hostile_model(name: str) -> Callable[[dict, dict], dict]:
    def change(files: dict, context: dict) -> dict:
        return {**files, "models/classifier.pt2": context["hostile_models"][name].read_bytes()}

    return change


@functools.cache
def _bomb() -> bytes:
    return hostile.npz_bomb()


def _with_npz_bomb(files: dict, context: dict) -> dict:
    """answer() copies ``models/bomb.npz`` (1 MB, 1 GB inflated) over the probe's data.npz."""
    return {**files, "exercise_code/answer.py": hostile.NPZ_BOMB, "models/bomb.npz": _bomb()}


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
    return {**files, NOTEBOOK: json.dumps(notebook).encode(), "exercise_code/answer.py": WRONG}


def _markup(files: dict, context: dict) -> dict:
    notebook = json.loads(files[NOTEBOOK])
    notebook["cells"].insert(1, nbgrader_cell("markdown", hostile.MARKDOWN))
    notebook["cells"][STUDENT_CELL + 1]["source"] = hostile.HTML_OUTPUT + "\nvalue = answer()"
    return {**files, NOTEBOOK: json.dumps(notebook).encode()}


def _untouched(files: dict, context: dict) -> dict:
    """The released files as they are: stubs, no model."""
    release_dir = context["course_dir"] / "release" / "exercise_08"
    return {
        p.relative_to(release_dir).as_posix(): p.read_bytes()
        for p in sorted(release_dir.rglob("*"))
        if p.is_file()
    }


WRONG = b"def answer():\n    return 41\n"
STUB = b"def answer():\n    raise NotImplementedError('Implement answer')\n"
LENIENT_ANSWER = b"def answer():\n    return 42.0\n"
"""An honest mistake that the lenient public check (``value == 42``) lets through and the trusted
check (an int) catches: it loses points and is not flagged."""
WARNING_ANSWER = (
    b"import sys\n\n\ndef answer():\n    print('computing', file=sys.stderr)\n    return 42\n"
)

CHANGES: dict[str, Callable[[dict, dict], dict]] = {
    "good": lambda files, context: files,
    "untouched": _untouched,
    "stderr_in_test": lambda files, context: {**files, "exercise_code/answer.py": WARNING_ANSWER},
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
    **{f"model_{name}": _with_model(name) for name in GRADED_MODEL_KINDS},
    "infinite_loop": with_code(hostile.UNSTOPPABLE_LOOP),
    "kernel_kills_itself": with_code("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
    "memory_blowup": with_code(hostile.MEMORY_ONE_PROCESS),
    "memory_across_processes": with_code(hostile.MEMORY_CHILDREN),
    "memory_across_spawned_interpreters": with_code(hostile.MEMORY_SPAWNED),
    "megabytes_of_printing": with_code("for i in range(100_000):\n    print('x' * 100)"),
    "fills_the_disk": with_code(hostile.FILL_DISK),
    "writes_gradebook_and_others": with_context_code(hostile.tamper_code),
    "searches_hidden_labels": with_context_code(hostile.search_code),
    "tries_network": with_code(hostile.NETWORK),
    # Processes that try to outlive their job (issue "the sandbox holds").
    "setsid_daemon": with_code(hostile.SETSID_DAEMON),
    "double_fork_nohup": with_code(hostile.NOHUP_SHELL),
    "aa_saboteur_of_the_next_slot": with_code(hostile.SLOT_SABOTEUR),
    "aa_spy_on_the_next_slot": with_code(hostile.SLOT_SPY),
    "fork_bomb": with_code(hostile.FORK_BOMB, STUB),
    "shell_fork_bomb": with_code(hostile.SHELL_FORK_BOMB, STUB),
    "ipc_leftovers": with_code(hostile.IPC_LEFTOVERS),
    "ipc_reaches_the_host": with_code(hostile.IPC_REACHES_THE_HOST),
    "writes_everywhere": with_context_code(hostile.write_everywhere),
    "fills_run_lock": with_code(hostile.FILL_RUN_LOCK),
    "plants_symlinks": with_context_code(hostile.plant_symlinks),
    "plants_device_links": with_context_code(hostile.plant_device_links),
    "snoops_proc": with_code(hostile.SNOOP_PROC),
    "snoops_proc_deeper": with_context_code(hostile.snoop_proc_deeper),
    # Points without the work (issue "trusted points"), each with a wrong or missing answer.
    "gradebook_manual_score": with_code(hostile.GRADEBOOK_MANUAL_SCORE, STUB),
    "gradebook_trigger": with_code(hostile.GRADEBOOK_TRIGGER, STUB),
    "gradebook_rewriter": with_code(hostile.GRADEBOOK_REWRITER, STUB),
    "lenient_public_check": lambda files, context: {
        **files,
        "exercise_code/answer.py": LENIENT_ANSWER,
    },
    "swallows_errors": with_code(hostile.SWALLOW_ERRORS, WRONG),
    "rewrites_later_cells": with_code(hostile.REWRITE_CELLS, WRONG),
    "shadows_given_helper": with_files(
        {
            "exercise_code/helpers/__init__.py": b"def check_answer(value):\n    pass\n",
            "exercise_code/answer.py": WRONG,
        }
    ),
    "shadows_with_sitecustomize": with_files(
        {
            "sitecustomize.py": b"import builtins\nbuiltins.AssertionError = KeyError\n",
            "exercise_code/answer.py": WRONG,
        }
    ),
    "cheats_only_under_nbgrader": lambda files, context: {
        **files,
        "exercise_code/answer.py": hostile.ANSWER_UNDER_NBGRADER_ONLY,
    },
    "cheats_outside_nbgrader": lambda files, context: {
        **files,
        "exercise_code/answer.py": hostile.ANSWER_WHEN_NOT_WATCHED,
    },
    "reads_hidden_tests": with_code(hostile.READ_HIDDEN_TESTS),
    "markup_in_notebook": _markup,
    "control_characters": lambda files, context: {
        **files,
        "exercise_code/answer.py": hostile.CONTROL_CHARACTERS,
    },
    # What a sandbox hands back is hostile data (issue "hostile data").
    "nan_in_probe_data": with_files({"exercise_code/answer.py": hostile.NAN_IN_PROBE_DATA}),
    "huge_npy_header": with_files({"exercise_code/answer.py": hostile.HUGE_NPY_HEADER}),
    "npz_bomb": _with_npz_bomb,
    "deep_json_probe_data": with_files({"exercise_code/answer.py": hostile.DEEP_JSON_PROBE_DATA}),
    "object_array": with_files({"exercise_code/answer.py": hostile.OBJECT_ARRAY}),
    "output_flood": with_code(hostile.OUTPUT_FLOOD),
    **{f"model_{name}": _with_hostile_model(name) for name in HOSTILE_MODEL_KINDS},
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
