"""What an exercise's ``grading/`` folder provides, written down once, and the loader by path.

An assignment's source folder (``<repo>/<assignment>/``) holds ``grading/`` (never released):

``grading/probes.py``
    Runs in the sandbox, forked from the warm parent. ``run(cell, code_dir, files_dir, out_dir,
    seed)`` imports the student's modules for one graded cell and writes data only:
    ``out/data.json`` (numbers, strings) and ``out/data.npz`` (numeric arrays).
``grading/verdicts.py``
    Runs in the grader. ``JUDGES``: the graded cells it judges; ``judge(cell, data, context)
    -> (passed, message)`` compares the probe's data with the reference solution on the same
    inputs. An exercise with a hidden-accuracy cell also gives ``model_images(context)`` (the
    public images the handed-in model runs on beside the hidden ones), and may name a graded
    cell ``MODEL_CHECK`` judged by ``judge_saved_classifier(public_logits, singles, batched,
    context) -> (passed, message)`` (both or neither).

The exercise's ``exercise_code/model_rules.py`` (when the exercise has a hidden-accuracy cell)
is the model validator used by the student's ``save_model`` and by the grader.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PROBES = "grading/probes.py"
VERDICTS = "grading/verdicts.py"
MODEL_RULES = "exercise_code/model_rules.py"

REQUIRED_VERDICT_NAMES = ("JUDGES", "judge")
MODEL_VERDICT_NAMES = ("model_images",)


def load_module(name: str, path: Path, package_dir: Path | None = None) -> ModuleType:
    """Import ``path`` as module ``name`` (once per process: a second call returns the first).

    With ``package_dir`` the module is a package whose submodules are found there.
    """
    if name in sys.modules:
        return sys.modules[name]
    locations = [str(package_dir)] if package_dir is not None else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def missing_names(verdicts: ModuleType, with_model: bool) -> list[str]:
    """The names :data:`VERDICTS` must define but ``verdicts`` does not."""
    wanted = REQUIRED_VERDICT_NAMES + (MODEL_VERDICT_NAMES if with_model else ())
    if hasattr(verdicts, "MODEL_CHECK"):
        wanted += ("judge_saved_classifier",)
    return [name for name in wanted if not hasattr(verdicts, name)]
