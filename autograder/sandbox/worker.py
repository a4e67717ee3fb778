"""Payloads that run inside the sandbox, forked from the warm parent: data in, data out.

- ``model``: the handed-in model, loaded only through the course's model validator
  (``model_rules.load_checked_model``: no pickles, no code, allowed operators only), run on the
  images it is given; writes the logits. It never sees a label.
- ``notebook``: nbgrader's autograde of a throwaway course, in this process (nbgrader and the
  libraries a notebook imports are loaded already), its kernel forked from it
  (:mod:`.forked_kernel`): the executed notebook for the feedback, never read for points.
- ``probe``: one trusted check's probe: imports the student's modules from the folder it is
  given and calls the assignment's probe function, which draws its inputs from the grading-time
  seed and returns data; writes that data.

Outputs are data only: ``.npy``/``.npz`` arrays (read back with ``allow_pickle=False``) and a
JSON object, in the job's own folder. The grader reads them with
:mod:`autograder.sandbox.untrusted` and decides everything itself.

``preload`` runs in the warm parent, before any fork, with what the grader names: the course's
``model_rules.py`` and the assignment's probe module, both loaded by file path (the sandbox
cannot see those folders later, and needs not).
"""

import importlib.util
import json
import os
import sys

MODULES: dict = {}
BATCH_SIZE = 2000


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def preload(config: dict) -> None:
    """Import torch and what ``config["modules"]`` names (``{name: file path}``), once."""
    import numpy  # noqa: F401
    import torch
    import torch.export  # noqa: F401

    torch.set_num_threads(1)
    for name, path in config.get("modules", {}).items():
        MODULES[name] = _load(f"autograder_preloaded_{name}", path)
    for name in config.get("imports", []):
        importlib.import_module(name)
    if "model_rules" in MODULES:
        _warm_up_model_loading(MODULES["model_rules"])
    if config.get("notebook"):
        _warm_up_notebook_run()


NOTEBOOK_IMPORTS = (
    "nbgrader.apps.nbgraderapp",
    "nbgrader.apps.autogradeapp",
    "nbgrader.converters.autograde",
    "nbclient",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",  # the kernel's traits resolve its class at start
    "ipykernel.kernelspec",
    "IPython",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.magics.pylab",
    "IPython.core.oinspect",
    "IPython.extensions.autoreload",
    "IPython.extensions.storemagic",
    "stack_data",  # formats a traceback in a notebook
    "pdb",
    "psutil",  # the kernel's list of its addresses
    "sqlite3",
    "sqlalchemy.dialects.sqlite",  # nbgrader's gradebook
    "tornado.platform.asyncio",
    "matplotlib",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "tqdm.auto",
    "ipywidgets",
    "forked_kernel",
)
"""What the notebook run and its kernel import anyway (about 4 s), imported once here."""


def _warm_up_notebook_run() -> None:
    # nbformat's validator makes jsonschema build an IRI grammar it never uses when this
    # module can be imported (about 2 s of each autograde): jsonschema skips that format then.
    sys.modules["rfc3987_syntax"] = None
    for name in NOTEBOOK_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library a notebook may not need
            pass


def _warm_up_model_loading(rules) -> None:
    """Import what loading an exported model needs (torch's export deserializer, sympy, dynamo:
    about 2 s), once here instead of in every model run.

    Imports only: running any operation here would start torch's thread pools in this process,
    and a child forked from it that sets its number of threads (the exercise's augmentation
    does) then aborts in ``at::set_num_threads`` ("Invalid thread pool!").
    """
    import sympy  # noqa: F401
    import sympy.tensor.tensor  # noqa: F401  (sympy's Add imports it on first use)
    import torch._dynamo  # noqa: F401
    import torch._export.serde.serialize  # noqa: F401
    import torch._inductor.sizevars  # noqa: F401  (the deserializer's ShapeEnv)
    import torch.export._trace  # noqa: F401  (the deserializer imports it on first use)
    import torch.export.pt2_archive._package  # noqa: F401
    import torch.fx.experimental.symbolic_shapes  # noqa: F401


def save_data(out: str, data: dict) -> None:
    """Write ``data`` as ``data.npz`` (its arrays and tensors) and ``data.json`` (the rest)."""
    import numpy as np
    import torch

    arrays, values = {}, {}
    for key, value in data.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            arrays[str(key)] = value
        else:
            values[str(key)] = value
    np.savez(os.path.join(out, "data.npz"), **arrays)
    with open(os.path.join(out, "data.json"), "w", encoding="utf-8") as handle:
        json.dump(values, handle, default=str)


def run_model(args: dict) -> int:
    """Logits of the validated model on ``args["images"]`` (float32 (N, 1, 28, 28)), in batches,
    and of its first ``args["singles"]`` images one at a time (a model must not depend on its
    batch): ``logits.npy`` (N, 10) and ``singles.npy``."""
    import numpy as np
    import torch

    rules = MODULES["model_rules"]
    images = torch.from_numpy(np.load(args["images"], allow_pickle=False))
    try:
        module = rules.load_checked_model(args["model"]).module()
        with torch.no_grad():
            logits = [module(images[i : i + BATCH_SIZE]) for i in range(0, len(images), BATCH_SIZE)]
            singles = [module(images[i : i + 1]) for i in range(args.get("singles", 0))]
        result = {"logits": torch.cat(logits), "singles": torch.cat(singles) if singles else None}
    except Exception as error:
        save_data(args["out"], {"error": f"{type(error).__name__}: {error}"[:300]})
        return 0
    for name, value in result.items():
        if value is not None:
            np.save(os.path.join(args["out"], f"{name}.npy"), value.detach().float().numpy())
    save_data(args["out"], {"error": None})
    return 0


def run_probe(args: dict) -> int:
    """Run one check's probe on the student's modules in ``args["code"]``; save its data."""
    sys.path.insert(0, args["code"])
    os.chdir(args["out"])
    try:
        data = MODULES["probes"].run(args["check"], int(args["seed"]), args.get("files"))
    except Exception as error:  # the student's code raised where the probe did not expect it
        data = {"probe_error": f"{type(error).__name__}: {error}"[:300]}
    save_data(args["out"], data)
    return 0


def run_notebook(args: dict) -> int:
    """nbgrader ``args["argv"]`` (``autograde ASSIGNMENT --student ID``) in the throwaway course
    that is the working folder; returns nbgrader's exit status."""
    import forked_kernel
    from nbgrader.apps.nbgraderapp import NbGraderApp
    from nbgrader.preprocessors import execute

    # nbgrader's Execute passes this class as an argument, which no configuration overrides.
    execute.AsyncKernelManager = forked_kernel.ForkedKernelManager
    sys.argv = ["nbgrader", *args["argv"]]
    try:
        NbGraderApp.launch_instance(argv=args["argv"])
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


PAYLOADS = {"model": run_model, "probe": run_probe, "notebook": run_notebook}
