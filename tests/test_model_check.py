"""The model check on every crafted and rule-breaking model: the validator's sentence, no code run.

Each model of :mod:`corpus_behaviour` goes through exactly what ``grade`` does with a handed-in
``models/classifier.pt2`` (:func:`autograder.grading.hidden_check.run_model`: checked here as
data, then
run in a sandbox forked from the warm parent), without the notebook's autograde around it (the
full corpus test grades a few of them end to end). A model that breaks a rule gets its rule's
sentence; the good one and the harmless crafted one run; nothing in any of them ever runs code
(no file appears where their pickles would write one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import corpus_behaviour as cb
import hostile_code as hostile
import numpy as np
import pytest

from autograder.exercise_modules import exercise_code_module
from autograder.grading.hidden_check import hidden_result, run_model
from autograder.sandbox import Sandbox, WarmParent, reserved_uids

RULES = Path(cb.REAL_EXERCISE / "exercise_code" / "model_rules.py")

REFUSED = {
    "not_pt2": "not a model saved with torch.export",
    "pickle_file": "not a model saved with torch.export",
    "conv": "only linear layers are allowed",
    "too_many_parameters": "more than the limit of 5,000,000",
    "too_large_file": "more than the limit of 20,000,000",
    "wrong_shape": "expected (",
    "nan_outputs": "NaN or infinite logits",
    "inf_outputs": "NaN or infinite logits",
    "flattened_input": "(N, 1, 28, 28)",
    "pixel_lookup": "indexing or lookup operation",
    "batch_mixing": "across the images of a batch",
    "batch_norm_training": "training mode",
    "pickled_weights": "as a pickle",
    "pickled_constant": "as a pickle",
    "custom_object": "custom objects",
    "custom_object_in_graph": "custom_obj",
    "guard_code": "guard code",
    "symbolic_size_code": "dynamic size other than the batch size",
    "control_flow": "control flow",
    "huge_graph": "larger than 8 MB",
}
RUN = {"good", "untrained", "pickled_sample_inputs", "public_test_lookup"}


@pytest.fixture(scope="module")
def checked(prepared_data_dir, tmp_path_factory) -> dict:
    """Every corpus model through run_model, as ``{name: (ModelRun, hidden accuracy)}``."""
    from autograder.data import load_hidden_set

    hostile.PWNED.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="autograder-model-check-"))
    work.chmod(0o755)
    context = cb.corpus_context(tmp_path_factory.mktemp("models"), work, prepared_data_dir)
    images, labels = load_hidden_set(prepared_data_dir)
    images_file = work / "images.npy"
    np.save(images_file, (images[:2000].astype(np.float32) / 255)[:, None], allow_pickle=False)
    rules = exercise_code_module("exercise_08", "model_rules")
    warm = WarmParent({"modules": {"model_rules": str(RULES)}})
    outcomes = {}
    try:
        with reserved_uids(1) as (uid,):
            for number, (name, path) in enumerate(sorted(context["models"].items())):
                out = work / f"out{number}"
                out.mkdir()
                if uid is not None:
                    os.chown(out, uid, uid)
                sandbox = Sandbox(120, 2**31, uid=uid, ro_binds=(str(path.parent), str(work)))
                run = run_model(warm, rules, path, images_file, 2000, out, sandbox)
                outcomes[name] = (run, hidden_result(run, labels[:2000], 50, 0.55))
    finally:
        warm.close()
        shutil.rmtree(work, ignore_errors=True)
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_model_that_breaks_a_rule_gets_no_hidden_points_and_the_rules_sentence(checked, name):
    run, hidden = checked[name]
    assert run.logits is None and hidden.score == 0
    assert REFUSED[name] in hidden.message, hidden.message


@pytest.mark.slow
def test_good_and_harmless_models_run_and_no_crafted_model_ran_code(checked):
    assert set(checked) == set(REFUSED) | RUN
    assert checked["good"][1].score == 50 and checked["good"][1].accuracy > 0.7
    assert checked["pickled_sample_inputs"][1].score == 50, "example inputs are never read"
    untrained = checked["untrained"][1]
    assert untrained.score == 0 and "below the 0.55" in untrained.message
    lookup = checked["public_test_lookup"][1]
    assert lookup.score == 0 and lookup.accuracy < 0.55, "memorizing public MNIST gains nothing"
    assert not hostile.PWNED.exists()
