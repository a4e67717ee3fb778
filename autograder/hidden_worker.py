"""Sandboxed worker of the hidden-accuracy check: images in, logits out, nothing else.

Usage (by :func:`autograder.hidden_check.check_hidden_accuracy` only, inside the sandbox)::

    python -I hidden_worker.py MODEL_RULES.py MODEL.pt2 IMAGES.npy LOGITS.npy RESULT.json

``model_rules.py`` is the source exercise's copy, loaded by file path. The worker re-checks the
model with ``check_model_file`` (the code the student's ``save_model`` ran), then runs it on the
images, float32 (N, 1, 28, 28) in [0, 1], in batches, checks the output with ``check_outputs``
and writes the logits, float32 (N, 10). ``RESULT.json`` is ``{"ok": true}`` or
``{"ok": false, "message": "<one sentence for the student>"}``. It never sees a label.
"""

import importlib.util
import json
import sys
from types import ModuleType

BATCH_SIZE = 2000


def load_rules(path: str) -> ModuleType:
    """The course's ``model_rules.py``, imported from its file path."""
    spec = importlib.util.spec_from_file_location("course_model_rules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(rules_path: str, model_path: str, images_path: str, logits_path: str) -> dict:
    """Check and run the model; write the logits; return the result (see the module docstring)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    rules = load_rules(rules_path)
    try:
        rules.check_model_file(model_path)
        module = rules.load_checked_model(model_path).module()
        images = torch.from_numpy(np.load(images_path, allow_pickle=False))
        outputs = []
        with torch.no_grad():
            for start in range(0, len(images), BATCH_SIZE):
                batch = images[start : start + BATCH_SIZE]
                try:
                    logits = module(batch)
                except Exception as error:
                    raise rules.ModelRuleError(
                        f"The model failed on the hidden test images ({type(error).__name__}); "
                        "it must accept float32 images of shape (N, 1, 28, 28) for any N."
                    ) from error
                rules.check_outputs(logits, len(batch))
                outputs.append(logits.detach().to(torch.float32).numpy())
    except rules.ModelRuleError as error:
        return {"ok": False, "message": str(error)}
    np.save(logits_path, np.concatenate(outputs), allow_pickle=False)
    return {"ok": True}


def main() -> None:
    rules_path, model_path, images_path, logits_path, result_path = sys.argv[1:6]
    result = run(rules_path, model_path, images_path, logits_path)
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
