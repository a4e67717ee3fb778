"""The rules a handed-in classifier must follow, checked by the same code when saving and grading.

The model is handed in as a ``torch.export`` program (``models/classifier.pt2``): a zip archive
holding the traced graph as JSON and the weights as raw bytes. ``torch.export.load`` is NOT safe
for a file someone else made: it unpickles pickled weights and example inputs and executes
Python "guard" code stored in the archive. So nothing here calls it. Instead:

1. :func:`check_model_archive` reads the archive as data (zip entries, JSON, raw bytes) and
   refuses anything outside the rules below, with one sentence saying what to change;
2. :func:`load_checked_model` rebuilds the program from exactly what step 1 checked (metadata,
   guard code, pickles and example inputs left out).

The rules:

- at most ``MAX_PARAMETERS`` stored numbers (parameters, buffers and constants together) and a
  file of at most ``MAX_FILE_BYTES`` bytes;
- weights and constants as plain tensors: no pickled payloads, no custom Python objects;
- linear layers only: every operation of the graph is in :data:`ALLOWED_OPERATIONS` (linear
  layers, elementwise activations and arithmetic, reshapes, batch norm and dropout in eval
  mode, layer norm, softmax), the weight of every linear layer is a stored parameter, and every
  image is processed on its own (no operation mixes the images of a batch);
- input float32 images (N, 1, 28, 28) in [0, 1] for any batch size N, output finite logits
  (N, 10).

Whatever bytes the file holds, the check answers with acceptance or a ModelRuleError, in
bounded time and memory: the zip's member count and unpacked sizes are checked before reading,
JSON nesting is measured on the raw text before parsing (the parser recurses), sizes, strides and
ranks of stored tensors are bounded, and any other error while reading becomes the sentence that
the file is not a valid model.

This file is given. The autograder loads it by file path, so it imports only torch and the
standard library.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import torch

MAX_PARAMETERS = 5_000_000
MAX_FILE_BYTES = 20_000_000
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
PROBE_BATCH_SIZES = (1, 7)

ALLOWED_OPERATIONS: dict[str, tuple[str, ...]] = {
    "linear layers (the weight a stored parameter)": (
        "linear.default",
        "addmm.default",
        "mm.default",
        "matmul.default",
        "t.default",
        "transpose.int",
        "permute.default",
    ),
    "elementwise activations": (
        "relu.default",
        "relu_.default",
        "relu6.default",
        "sigmoid.default",
        "tanh.default",
        "gelu.default",
        "silu.default",
        "mish.default",
        "leaky_relu.default",
        "elu.default",
        "selu.default",
        "celu.default",
        "softplus.default",
        "hardtanh.default",
        "hardsigmoid.default",
        "hardswish.default",
        "exp.default",
        "log.default",
        "abs.default",
        "neg.default",
        "sqrt.default",
        "rsqrt.default",
        "square.default",
        "pow.Tensor_Scalar",
        "clamp.default",
        "clamp_min.default",
        "clamp_max.default",
    ),
    "elementwise arithmetic": (
        "add.Tensor",
        "add.Scalar",
        "sub.Tensor",
        "sub.Scalar",
        "rsub.Scalar",
        "mul.Tensor",
        "mul.Scalar",
        "div.Tensor",
        "div.Scalar",
    ),
    "reshapes and copies": (
        "flatten.using_ints",
        "view.default",
        "reshape.default",
        "_unsafe_view.default",
        "unflatten.int",
        "squeeze.dim",
        "unsqueeze.default",
        "clone.default",
        "contiguous.default",
        "alias.default",
        "detach.default",
        "_to_copy.default",
        "to.dtype",
        "sym_size.int",
        "getitem",
    ),
    "batch norm and dropout in eval mode, layer norm, sums and means over features": (
        "batch_norm.default",
        "_native_batch_norm_legit_no_training.default",
        "layer_norm.default",
        "native_layer_norm.default",
        "dropout.default",
        "sum.dim_IntList",
        "mean.dim",
    ),
    "softmax": (
        "softmax.int",
        "log_softmax.int",
        "_softmax.default",
        "_log_softmax.default",
    ),
}
"""What "linear layers only" means, spelled out: the aten operators a model may use."""

_ALLOWED = {op for ops in ALLOWED_OPERATIONS.values() for op in ops}
_WEIGHT_ARGUMENT = {"linear.default": 1, "addmm.default": 2, "mm.default": 1, "matmul.default": 1}
_FEATURE_DIM_ARGUMENT = {
    "softmax.int": 1,
    "log_softmax.int": 1,
    "_softmax.default": 1,
    "_log_softmax.default": 1,
    "sum.dim_IntList": 1,
    "mean.dim": 1,
}
_TRAINING_ARGUMENT = {"batch_norm.default": 5, "dropout.default": 2}
_FLOAT_TYPES = {6: torch.float16, 7: torch.float32, 8: torch.float64, 13: torch.bfloat16}
_STORED_TYPES = {
    **_FLOAT_TYPES,
    1: torch.uint8,
    2: torch.int8,
    3: torch.int16,
    4: torch.int32,
    5: torch.int64,
    12: torch.bool,
}
_ARGUMENT_KINDS = {
    "as_none",
    "as_tensor",
    "as_int",
    "as_ints",
    "as_float",
    "as_floats",
    "as_bool",
    "as_bools",
    "as_string",
    "as_scalar_type",
    "as_memory_format",
    "as_layout",
    "as_device",
    "as_sym_int",
    "as_sym_ints",
}
_BATCH_SYMBOL = re.compile(r"Symbol\('(s\d{1,6})', positive=True, integer=True\)")
_ENTRY = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/sample_inputs/model\.pt"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d{1,6}"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d{1,6})"
)
_MAX_JSON_BYTES = 8_000_000
_MAX_JSON_DEPTH = 64
"""A model saved with save_model nests its JSON 9 levels deep; deeper JSON is refused unread."""
_MAX_ENTRIES = 10_000
_MAX_RANK = 8
_MAX_EXTENT = 2**31
"""No size, stride or offset of a stored tensor may reach this (5,000,000 numbers never need it)."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
"""A JSON string (one way to match each character: linear time, even unterminated)."""
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


class ModelRuleError(Exception):
    """A saved model breaks one of the rules; the message says what to change."""


class CheckedArchive(NamedTuple):
    """What :func:`check_model_archive` accepted: the program JSON (sanitized) and the raw
    stored tensors ``{name: (dtype, sizes, strides, offset, bytes)}``."""

    program: dict
    weights: dict[str, tuple]
    constants: dict[str, tuple]
    stored_numbers: int


def _refuse(what: str, change: str) -> ModelRuleError:
    """The error for a broken rule: what is wrong; what to change."""
    return ModelRuleError(f"{what}; {change} (see the rules in exercise_code/model_rules.py).")


# ----------------------------------------------------------------------------- the archive


def _read_entries(path: Path) -> dict[str, bytes]:
    """The archive's files by their name below its one top folder (example inputs, which are
    pickled, are never read)."""
    try:
        if path.read_bytes().count(b"PK\x01\x02") > _MAX_ENTRIES:
            raise _refuse(f"{path.name} holds too many files", "save it with save_model")
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            names = {i.filename.partition("/")[2]: i for i in infos}
            tops = {i.filename.partition("/")[0] for i in infos}
            if len(tops) != 1 or "archive_format" not in names:
                raise zipfile.BadZipFile("no torch.export archive")
            if sum(i.file_size for i in infos) > 4 * MAX_FILE_BYTES or len(infos) > _MAX_ENTRIES:
                raise _refuse(f"{path.name} unpacks to too much data", "save it with save_model")
            unknown = sorted(name for name in names if not _ENTRY.fullmatch(name))
            if unknown:
                raise _refuse(
                    f"{path.name} holds {unknown[0]!r}, which a model file made by save_model "
                    "does not (custom objects, compiled code and extra files are not allowed)",
                    "save the model again with save_model",
                )
            return {
                name: _read_member(archive, info)
                for name, info in names.items()
                if name != "data/sample_inputs/model.pt"
            }
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError, zlib.error) as error:
        raise ModelRuleError(
            f"{path.name} is not a model saved with torch.export ({type(error).__name__}); "
            "save it again with save_model."
        ) from error


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, reading at most what it declares (whatever its data would inflate to)."""
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise zipfile.BadZipFile("a member unpacks to more than it declares")
    return data


def _json_depth(data: bytes) -> int:
    """How deep JSON text nests, counted on the raw text (strings taken out) without parsing."""
    brackets = _JSON_STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    marks = torch.frombuffer(bytearray(brackets), dtype=torch.uint8)
    steps = ((marks == ord("[")) | (marks == ord("{"))).to(torch.int32) * 2 - 1
    return int(torch.cumsum(steps, 0).max())


def _json(entries: dict[str, bytes], name: str) -> dict:
    data = entries.get(name)
    if data is None:
        raise ModelRuleError(f"The model file lacks {name}; save it again with save_model.")
    if len(data) > _MAX_JSON_BYTES:
        raise ModelRuleError(
            f"The model's {name} is larger than {_MAX_JSON_BYTES // 10**6} MB (far more operations "
            "than a network of linear layers needs); save a smaller model with save_model."
        )
    if _json_depth(data) > _MAX_JSON_DEPTH:
        raise ModelRuleError(
            f"The model's {name} nests more than {_MAX_JSON_DEPTH} levels deep, which a model "
            "saved with save_model never does; save it again with save_model."
        )
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise ModelRuleError(f"{name} in the model file is not JSON; save it again.") from error
    if not isinstance(value, dict):
        raise ModelRuleError(f"{name} in the model file is not a JSON object; save it again.")
    return value


def _list(value: object) -> list:
    if not isinstance(value, list):
        raise ModelRuleError("A stored tensor's shape is not a list; save the model again.")
    return value


def _ints(values: list, what: str) -> list[int]:
    out = []
    for value in values:
        if (
            not isinstance(value, dict)
            or set(value) != {"as_int"}
            or type(value["as_int"]) is not int
        ):
            raise _refuse(
                f"The stored tensor {what} has a size that is not a number", "save it again"
            )
        out.append(value["as_int"])
    return out


def _stored_tensors(entries: dict[str, bytes], kind: str) -> dict[str, tuple]:
    """The raw tensors listed in ``data/<kind>/model_<kind>_config.json``, checked."""
    config = _json(entries, f"data/{kind}/model_{kind}_config.json").get("config")
    if not isinstance(config, dict):
        raise ModelRuleError(f"The {kind} list of the model file is malformed; save it again.")
    prefix = "weight_" if kind == "weights" else "tensor_"
    tensors = {}
    for name, meta in config.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(
                f"The model stores {name!r} as a pickle (tensor subclasses and custom objects are "
                "saved that way), which could run code when loaded",
                "use ordinary float tensors and save the model again with save_model",
            )
        path_name, tensor = meta.get("path_name"), meta.get("tensor_meta") or {}
        if not isinstance(tensor, dict):
            raise _refuse(f"The model file lists {name!r} in an unknown form", "save it again")
        if not isinstance(path_name, str) or not path_name.startswith(prefix):
            raise _refuse(f"The model file lists {name!r} in an unknown form", "save it again")
        data = entries.get(f"data/{kind}/{path_name}")
        code = tensor.get("dtype")
        dtype = _STORED_TYPES.get(code) if type(code) is int else None
        if data is None or dtype is None or tensor.get("layout") != 7:
            raise _refuse(
                f"The stored tensor {name!r} is missing or of an unsupported type",
                "keep weights as dense float tensors and save it again",
            )
        sizes = _ints(_list(tensor.get("sizes", [])), name)
        strides = _ints(_list(tensor.get("strides", [])), name)
        offset = _ints([tensor.get("storage_offset", {"as_int": 0})], name)[0]
        element = torch.empty((), dtype=dtype).element_size()
        extents = [offset, *sizes, *strides]
        if (
            len(sizes) != len(strides)
            or len(sizes) > _MAX_RANK
            or not all(0 <= n < _MAX_EXTENT for n in extents)
        ):
            raise _refuse(f"The stored tensor {name!r} has a broken shape", "save it again")
        needed = offset + sum((s - 1) * st for s, st in zip(sizes, strides, strict=True)) + 1
        if 0 not in sizes and needed * element > len(data):
            raise _refuse(f"The stored tensor {name!r} is cut short", "save it again")
        tensors[name] = (dtype, sizes, strides, offset, data)
    return tensors


# ----------------------------------------------------------------------------- the graph


def _symbol(size: object, batch: str | None) -> str | None:
    """The batch symbol if ``size`` is the dynamic batch size, None if a number; else refuse."""
    if isinstance(size, dict) and set(size) == {"as_int"} and type(size["as_int"]) is int:
        return None
    expr = size.get("as_expr", {}).get("expr_str") if isinstance(size, dict) else None
    match = _BATCH_SYMBOL.fullmatch(expr) if isinstance(expr, str) else None
    if match is None or (batch is not None and match.group(1) != batch):
        raise _refuse(
            "The model has a dynamic size other than the batch size N",
            "keep every size but the first fixed (use flatten(1) or view(N, -1)) and save it with "
            "save_model",
        )
    return match.group(1)


def _check_argument(argument: object, where: str) -> None:
    if not isinstance(argument, dict) or len(argument) != 1:
        raise _refuse(f"{where} has a malformed argument", "save the model again")
    kind, value = next(iter(argument.items()))
    if kind not in _ARGUMENT_KINDS:
        raise _refuse(
            f"{where} takes a {kind.removeprefix('as_')} (a subgraph, custom object or operator: "
            "control flow or custom code)",
            "keep forward to tensor operations without if/while on tensor values",
        )
    if kind == "as_string" and not (
        isinstance(value, str) and re.fullmatch(r"[a-z_]{1,16}", value)
    ):
        raise _refuse(f"{where} takes an unexpected text argument", "save the model again")
    if kind == "as_device" and value.get("type") != "cpu":
        raise _refuse(f"{where} moves data to a {value.get('type')} device", "save it on the CPU")


def _operation_hint(op: str) -> str:
    if re.search(r"conv", op):
        return "a convolution, but only linear layers are allowed in this exercise"
    if re.search(r"index|gather|scatter|embedding|take|select|where|masked", op):
        return "an indexing or lookup operation, which the rules do not allow"
    if re.search(r"cond|while|scan|map|higher_order", op):
        return "control flow, which the rules do not allow"
    if op.split(".")[0].endswith("_"):
        return "an in-place change of a stored tensor (batch norm in training mode does that)"
    return "an operation outside the allowed ones"


def _check_graph(program: dict) -> str:
    """Check every node of the graph; returns the batch symbol."""
    graph = program.get("graph_module", {}).get("graph", {})
    values = graph.get("tensor_values")
    if not isinstance(values, dict) or not isinstance(graph.get("nodes"), list):
        raise ModelRuleError("The model file has no readable graph; save it again with save_model.")
    for key in ("custom_obj_values", "sym_bool_values", "sym_float_values"):
        if graph.get(key):
            raise _refuse(f"The model uses {key.removesuffix('_values')} values", "save it again")
    signature = program["graph_module"].get("signature", {})
    user_inputs = [s["user_input"] for s in signature.get("input_specs", []) if "user_input" in s]
    outputs = signature.get("output_specs", [])
    if len(user_inputs) != 1 or len(outputs) != 1 or "user_output" not in outputs[0]:
        raise _refuse(
            "The model must take one tensor of images and return one tensor of logits, and must "
            "not change its buffers (batch norm in training mode does)",
            "call model.eval() before saving, or use save_model, which does",
        )
    image = user_inputs[0]["arg"].get("as_tensor", {}).get("name")
    sizes = values.get(image, {}).get("sizes", [])
    batch = _symbol(sizes[0], None) if len(sizes) == 4 else None
    if batch is None or [_symbol(s, batch) for s in sizes[1:]] != [None] * 3:
        raise _refuse(
            "The model must take images (N, 1, 28, 28) for any batch size N",
            "save it with save_model, which exports it with a dynamic batch size",
        )
    from_batch = {image}
    for number, node in enumerate(graph["nodes"]):
        target = str(node.get("target", ""))
        op = target.removeprefix("torch.ops.aten.").removeprefix("_operator.")
        if op not in _ALLOWED:
            raise _refuse(
                f"The model uses {target.removeprefix('torch.ops.')}, {_operation_hint(op)}",
                "build it from nn.Linear layers and the operations the rules list",
            )
        where = f"Operation {number + 1} ({op})"
        arguments = [entry.get("arg") for entry in node.get("inputs", [])]
        for argument in arguments:
            _check_argument(argument, where)
        tensors = [a["as_tensor"]["name"] for a in arguments if "as_tensor" in a]
        on_batch = any(t in from_batch for t in tensors)
        _check_node_rules(op, arguments, tensors, from_batch, values, where)
        for output in node.get("outputs", []):
            for kind, value in output.items():
                names = (
                    [v.get("name") for v in value] if kind == "as_tensors" else [value.get("name")]
                )
                if kind not in ("as_tensor", "as_tensors", "as_sym_int"):
                    raise _refuse(f"{where} returns a {kind}", "save the model again")
                for name in names if kind != "as_sym_int" else []:
                    _check_shape(values.get(name, {}).get("sizes", []), on_batch, batch, where)
                    if on_batch:
                        from_batch.add(name)
    final = outputs[0]["user_output"]["arg"].get("as_tensor", {}).get("name")
    out_sizes = values.get(final, {}).get("sizes", [])
    if len(out_sizes) != 2 or _symbol(out_sizes[0], batch) != batch:
        raise _refuse(
            "The model must return logits of shape (N, 10)", "end it with nn.Linear(..., 10)"
        )
    return batch


def _check_shape(sizes: list, on_batch: bool, batch: str, where: str) -> None:
    symbols = [_symbol(size, batch) for size in sizes]
    if (on_batch and (not symbols or symbols[0] != batch)) or any(symbols[1 if on_batch else 0 :]):
        raise _refuse(
            f"{where} mixes the images of a batch (the batch size N must stay the first dimension "
            "and appear nowhere else)",
            "process every image on its own",
        )


def _check_node_rules(
    op: str, arguments: list, tensors: list, from_batch: set, values: dict, where: str
) -> None:
    """The rules of single operations: stored weights, feature dimensions, eval mode, floats."""
    if op in _WEIGHT_ARGUMENT:
        weight = arguments[_WEIGHT_ARGUMENT[op]].get("as_tensor", {}).get("name")
        if weight in from_batch or weight is None:
            raise _refuse(
                f"{where} multiplies by a tensor computed from the images instead of a stored "
                "weight",
                "use nn.Linear layers, whose weights are parameters",
            )
    if op in _FEATURE_DIM_ARGUMENT and tensors and tensors[0] in from_batch:
        rank = len(values.get(tensors[0], {}).get("sizes", []))
        spec = arguments[_FEATURE_DIM_ARGUMENT[op]]
        dims = spec.get("as_ints", [spec.get("as_int")]) if isinstance(spec, dict) else []
        if any(not isinstance(d, int) or d % max(rank, 1) == 0 for d in dims):
            raise _refuse(f"{where} works across the images of a batch", "use dim=1 (features)")
    if op in _TRAINING_ARGUMENT:
        training = (
            arguments[_TRAINING_ARGUMENT[op]] if len(arguments) > _TRAINING_ARGUMENT[op] else {}
        )
        if training.get("as_bool") is not False:
            raise _refuse(
                f"{where} is batch norm or dropout in training mode",
                "call model.eval() before saving (save_model does)",
            )
    if op in ("_to_copy.default", "to.dtype"):
        dtypes = [a.get("as_scalar_type") for a in arguments if "as_scalar_type" in a]
        if any(d not in _FLOAT_TYPES for d in dtypes):
            raise _refuse(f"{where} turns numbers into integers or booleans", "keep floats")
    if op == "sym_size.int" and arguments[1].get("as_int") != 0:
        raise _refuse(f"{where} reads a size other than the batch size", "save it again")


def _sanitized(program: dict, batch: str) -> dict:
    """Only what the checks looked at: no node metadata, no guard code, one call-graph entry."""
    graph_module = program["graph_module"]
    nodes = [{**node, "metadata": {}} for node in graph_module["graph"]["nodes"]]
    root_call = [
        entry for entry in graph_module.get("module_call_graph", []) if entry.get("fqn") == ""
    ]
    verifiers = [v for v in program.get("verifiers", []) if v in ("TRAINING", "ATEN", "")]
    limits = program.get("range_constraints", {}).get(batch, {})
    low, high = limits.get("min_val"), limits.get("max_val")
    if type(low) is not int or type(high) is not int:
        raise _refuse("The model's batch size has no numeric range", "save it with save_model")
    return {
        "graph_module": {
            "graph": {**graph_module["graph"], "nodes": nodes},
            "signature": graph_module["signature"],
            "module_call_graph": root_call[:1],
            "metadata": {},
            "treespec_namedtuple_fields": {},
        },
        "opset_version": program.get("opset_version", {}),
        "range_constraints": {batch: {"min_val": low, "max_val": high}},
        "schema_version": program.get("schema_version"),
        "verifiers": verifiers,
        "torch_version": str(program.get("torch_version", "")),
        "guards_code": [],
    }


_CALL_SPEC = {
    "in_spec": '[1, {"type": "builtins.tuple", "context": "null", "children_spec": [{"type": '
    '"builtins.tuple", "context": "null", "children_spec": [{"type": null, "context": null, '
    '"children_spec": []}]}, {"type": "builtins.dict", "context": "[]", "children_spec": []}]}]',
    "out_spec": '[1, {"type": null, "context": null, "children_spec": []}]',
}


def check_model_archive(path: str | Path) -> CheckedArchive:
    """Check a saved model file against every rule, reading it as data only (no code runs).

    Inputs:
    - path: the ``.pt2`` file written by ``save_model``.

    Returns the checked parts (:class:`CheckedArchive`).
    Raises ModelRuleError with one sentence saying what is wrong and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelRuleError(
            f"No saved model at {path}; run the cell that trains and saves the final model "
            "(section 8) to create it."
        )
    try:
        return _check_archive(path)
    except ModelRuleError:
        raise
    except Exception as error:
        raise ModelRuleError(
            f"{path.name} could not be read as a valid exported program ({type(error).__name__}); "
            "save the model again with save_model and check that it loads."
        ) from error


def _check_archive(path: Path) -> CheckedArchive:
    """:func:`check_model_archive` on an existing file; may raise anything on hostile bytes."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelRuleError(
            f"The model file {path.name} has {size:,} bytes, more than the limit of "
            f"{MAX_FILE_BYTES:,}; use smaller layers."
        )
    entries = _read_entries(path)
    if entries.get("archive_format") != b"pt2":
        raise ModelRuleError(
            f"{path.name} is not a model saved with torch.export; save it again with save_model."
        )
    program = _json(entries, "models/model.json")
    weights = _stored_tensors(entries, "weights")
    constants = _stored_tensors(entries, "constants")
    numbers = sum(_numel(t[1]) for t in [*weights.values(), *constants.values()])
    if numbers > MAX_PARAMETERS:
        raise ModelRuleError(
            f"The model has {numbers:,} parameters, more than the limit of {MAX_PARAMETERS:,}; "
            "use fewer or smaller layers."
        )
    try:
        signature = program["graph_module"]["signature"]
        stored = {
            spec[kind].get(f"{kind}_name") or spec[kind].get("name")
            for spec in signature["input_specs"]
            for kind in ("parameter", "buffer", "tensor_constant")
            if kind in spec
        }
        known = ("parameter", "buffer", "tensor_constant", "user_input")
        unknown = [k for spec in signature["input_specs"] for k in spec if k not in known]
        if unknown:
            raise _refuse(
                f"The model takes a {unknown[0].replace('_', ' ')} (custom objects and tokens "
                "are not allowed)",
                "save a model of plain tensor operations with save_model",
            )
        if stored != set(weights) | set(constants):
            raise _refuse("The model's stored tensors do not match its graph", "save it again")
        parameters = [
            spec["parameter"].get("parameter_name")
            for spec in signature["input_specs"]
            if "parameter" in spec
        ]
        if any(weights[p][0] not in _FLOAT_TYPES.values() for p in parameters if p in weights):
            raise _refuse(
                "A parameter of the model is stored as integers or booleans",
                "keep the weights as float tensors and save it again with save_model",
            )
        if program.get("guards_code"):
            raise _refuse(
                "The model file carries Python guard code, which save_model never writes and "
                "the grader does not run",
                "save the model again with save_model",
            )
        batch = _check_graph(program)
        calls = [
            e for e in program["graph_module"].get("module_call_graph", []) if e.get("fqn") == ""
        ]
        call_signature = calls[0].get("signature") if calls else None
        if not call_signature or any(call_signature.get(k) != v for k, v in _CALL_SPEC.items()):
            raise _refuse(
                "The model must be called with one tensor and return one tensor",
                "save it with save_model",
            )
        return CheckedArchive(_sanitized(program, batch), weights, constants, numbers)
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise ModelRuleError(
            f"The graph in {path.name} is malformed ({type(error).__name__}); save the model "
            "again with save_model."
        ) from error


def _numel(sizes: list[int]) -> int:
    count = 1
    for size in sizes:
        count *= size
    return count


def _tensor(stored: tuple, requires_grad: bool) -> torch.Tensor:
    dtype, sizes, strides, offset, data = stored
    flat = torch.frombuffer(bytearray(data), dtype=dtype) if data else torch.empty(0, dtype=dtype)
    return torch.as_strided(flat, sizes, strides, offset).clone().requires_grad_(requires_grad)


def load_checked_model(path: str | Path) -> torch.export.ExportedProgram:
    """Check the model file (:func:`check_model_archive`) and rebuild only what was checked.

    Inputs:
    - path: the ``.pt2`` file written by ``save_model``.

    Returns the ExportedProgram; call ``program.module()(images)`` to run it.
    Raises ModelRuleError with one sentence saying what is wrong and what to do.
    """
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    checked = check_model_archive(path)
    parameters = {
        spec["parameter"]["parameter_name"]
        for spec in checked.program["graph_module"]["signature"]["input_specs"]
        if "parameter" in spec
    }
    try:
        state = {name: _tensor(t, name in parameters) for name, t in checked.weights.items()}
        state = {n: torch.nn.Parameter(t) if n in parameters else t for n, t in state.items()}
        constants = {name: _tensor(t, False) for name, t in checked.constants.items()}
        serialized = _dict_to_dataclass(schema.ExportedProgram, checked.program)
        return ExportedProgramDeserializer().deserialize(serialized, state, constants, None)
    except Exception as error:
        raise ModelRuleError(
            f"{Path(path).name} could not be rebuilt from its checked parts "
            f"({type(error).__name__}); save the model again with save_model."
        ) from error


def check_outputs(logits: object, batch_size: int) -> None:
    """Check that a model's output is a finite float tensor of shape (batch_size, 10).

    Inputs:
    - logits: whatever the model returned for a batch of images (a tensor or an array).
    - batch_size: N, the number of images in that batch.

    Raises ModelRuleError if not.
    """
    if not isinstance(logits, torch.Tensor) and type(logits).__name__ == "ndarray":
        logits = torch.from_numpy(logits)
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
    """Check every rule for a saved model: the file, then a run on probe batches of two sizes.

    Inputs:
    - path: the ``.pt2`` file written by ``save_model``.

    Raises ModelRuleError with one sentence saying what is wrong and what to do.
    """
    module = load_checked_model(path).module()
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
