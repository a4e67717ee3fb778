"""The rules a handed-in classifier must follow, checked the same way when saving and grading.

The model is handed in as a ``torch.export`` ExportedProgram (``models/classifier.pt2``): a
traced graph plus its weights. Loading one runs no Python code of the student's, which is why
the course uses this format. The rules:

- at most ``MAX_PARAMETERS`` stored numbers (parameters, buffers and constants together);
- a file of at most ``MAX_FILE_BYTES`` bytes;
- linear layers only: the exported graph contains no convolution;
- input float32 images of shape (N, 1, 28, 28) with values in [0, 1], for any batch size N;
- output finite logits of shape (N, 10).

This file is given. The autograder also loads it by file path in a sandboxed process, so it
imports only torch and the standard library.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

MAX_PARAMETERS = 5_000_000
MAX_FILE_BYTES = 20_000_000
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
PROBE_BATCH_SIZES = (1, 7)

# aten.convolution, aten.conv2d, aten.conv_transpose2d, aten._convolution, mkldnn_convolution...
# ("convert_element_type" must not match, hence no bare "conv").
_CONVOLUTION_OP = re.compile(r"convolution|conv\d+d|conv_transpose|conv_tbc")


class ModelRuleError(Exception):
    """A saved model breaks one of the rules; the message says what to change."""


def _graph_modules(program: torch.export.ExportedProgram) -> list[torch.fx.GraphModule]:
    """The top-level graph module and every nested one (e.g. the branches of a ``cond``)."""
    return [m for m in program.graph_module.modules() if isinstance(m, torch.fx.GraphModule)]


def _convolution_ops(program: torch.export.ExportedProgram) -> list[str]:
    """Names of the convolution operators called anywhere in the exported graph."""
    found = []
    for graph_module in _graph_modules(program):
        for node in graph_module.graph.nodes:
            if node.op == "call_function" and _CONVOLUTION_OP.search(str(node.target)):
                found.append(str(node.target))
    return sorted(set(found))


def count_stored_numbers(program: torch.export.ExportedProgram) -> int:
    """Number of values stored in the model: parameters, buffers and tensor constants."""
    tensors = list(program.state_dict.values()) + list(program.constants.values())
    return sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))


def load_checked_model(path: str | Path) -> torch.export.ExportedProgram:
    """Load a saved ExportedProgram and check the file size, the size and the operators.

    Inputs:
    - path: the ``.pt2`` file written by ``torch.export.save``.

    Returns the ExportedProgram; call ``program.module()(images)`` to run it.
    Raises ModelRuleError with one sentence saying what is wrong and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelRuleError(
            f"No saved model at {path}; run the notebook's save_model cell to create it."
        )
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelRuleError(
            f"The model file {path.name} has {size:,} bytes, more than the limit of "
            f"{MAX_FILE_BYTES:,}; use smaller layers."
        )
    try:
        program = torch.export.load(path)
    except Exception as error:
        raise ModelRuleError(
            f"{path.name} is not a model saved with torch.export ({type(error).__name__}); "
            "save it again with save_model."
        ) from error
    if not isinstance(program, torch.export.ExportedProgram):
        raise ModelRuleError(f"{path.name} does not hold a torch.export program; use save_model.")

    numbers = count_stored_numbers(program)
    if numbers > MAX_PARAMETERS:
        raise ModelRuleError(
            f"The model has {numbers:,} parameters, more than the limit of {MAX_PARAMETERS:,}; "
            "use fewer or smaller layers."
        )
    convolutions = _convolution_ops(program)
    if convolutions:
        raise ModelRuleError(
            f"The model uses a convolution ({', '.join(convolutions)}), but only linear layers "
            "are allowed in this exercise; replace it with nn.Linear layers."
        )
    return program


def check_outputs(logits: object, batch_size: int) -> None:
    """Check that a model's output is a finite float tensor of shape (batch_size, 10).

    Inputs:
    - logits: whatever the model returned for a batch of images.
    - batch_size: N, the number of images in that batch.

    Raises ModelRuleError if not.
    """
    if not isinstance(logits, torch.Tensor):
        raise ModelRuleError(
            f"The model returned a {type(logits).__name__}, not a tensor; forward must return "
            "the logits tensor of shape (N, 10)."
        )
    expected = (batch_size, NUM_CLASSES)
    if tuple(logits.shape) != expected:
        raise ModelRuleError(
            f"The model returned shape {tuple(logits.shape)} for {batch_size} images, "
            f"expected {expected}; forward must return one logit per class and image."
        )
    if not logits.is_floating_point():
        raise ModelRuleError(
            f"The model returned {logits.dtype} values; forward must return float logits."
        )
    if not torch.isfinite(logits).all():
        raise ModelRuleError(
            "The model returned NaN or infinite logits; check the training (learning rate, "
            "loss) and save a model whose outputs are finite."
        )


def probe_images(batch_size: int, seed: int = 0) -> torch.Tensor:
    """Random float32 images in [0, 1] of shape (batch_size, 1, 28, 28), the same every time."""
    generator = torch.Generator().manual_seed(seed + batch_size)
    return torch.rand((batch_size, *IMAGE_SHAPE), generator=generator, dtype=torch.float32)


def check_model_file(path: str | Path) -> None:
    """Check every rule for a saved model: load it and run it on probe batches of two sizes.

    Inputs:
    - path: the ``.pt2`` file written by ``save_model``.

    Raises ModelRuleError with one sentence saying what is wrong and what to do.
    """
    program = load_checked_model(path)
    module = program.module()
    for batch_size in PROBE_BATCH_SIZES:
        images = probe_images(batch_size)
        try:
            with torch.no_grad():
                logits = module(images)
        except Exception as error:
            raise ModelRuleError(
                f"The saved model failed on a batch of {batch_size} images of shape "
                f"{tuple(images.shape)} ({type(error).__name__}); it must accept float32 "
                "images (N, 1, 28, 28) for any N, so save it with save_model."
            ) from error
        check_outputs(logits, batch_size)
