"""The model validator answers ANY file with acceptance or its own sentence, in bounded time.

Property-based tests (Hypothesis) over mutations of a real ``torch.export`` archive of a small
linear classifier: values of the graph JSON and of the tensor lists replaced by values of other
types, deeply nested, lists cut or grown, sizes and strides changed, members dropped, added,
duplicated, truncated or replaced, and the archive's bytes cut or flipped. For every one,
``check_model_archive`` returns or raises ModelRuleError (nothing else), within
:data:`SECONDS`; and what it accepts, ``load_checked_model`` rebuilds or refuses with its own
sentence too. The runs are derandomized (the same examples on every machine) and bounded by
``max_examples``; every failing example Hypothesis found is kept below as an ``@example``.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from autograder.exercise_modules import exercise_code_module

rules = exercise_code_module("exercise_08", "model_rules")
SECONDS = 10.0
"""Time one check may take on a slow machine (an ordinary one takes milliseconds)."""
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODEL_JSON = "models/model.json"
WEIGHTS_JSON = "data/weights/model_weights_config.json"


def _real_archive() -> tuple[str, dict[str, bytes]]:
    """A small linear classifier exported and saved as ``save_model`` does: (top folder,
    ``{name below it: bytes}``)."""
    import torch
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    batch = torch.export.Dim("batch", min=1, max=100_000)
    program = torch.export.export(model, (torch.rand(4, 1, 28, 28),), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        top = archive.namelist()[0].split("/")[0]
        return top, {i.filename.split("/", 1)[1]: archive.read(i) for i in archive.infolist()}


TOP, ENTRIES = _real_archive()


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        for name, data in entries:
            archive.writestr(f"{TOP}/{name}", data)
    return stream.getvalue()


def answer(data: bytes) -> str:
    """Run the validator (and, if it accepts, the loader) on ``data``; "accepted" or the
    refusal sentence. Fails the test on any other exception or on a slow answer."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "classifier.pt2"
        path.write_bytes(data)
        start = time.monotonic()
        try:
            rules.check_model_archive(path)
            rules.load_checked_model(path)
            outcome = "accepted"
        except rules.ModelRuleError as refused:
            outcome = str(refused)
        assert time.monotonic() - start < SECONDS
    assert outcome == "accepted" or (len(outcome) > 30 and outcome.endswith(".")), outcome
    return outcome


def with_json(name: str, value: object) -> bytes:
    """The real archive with entry ``name`` replaced by ``value`` (JSON text, or a value)."""
    entries = dict(ENTRIES)
    entries[name] = value if isinstance(value, bytes) else json.dumps(value).encode()
    return _zip(list(entries.items()))


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into a JSON value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(value: object, path: tuple, new: object) -> object:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(copy[path[0]], path[1:], new)
    return copy


def _get(value: object, path: tuple) -> object:
    for step in path:
        value = value[step]
    return value


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


DEEP = "\x00deep\x00"
"""Stands for the deeply nested value until the text is written (json.dumps recurses)."""


def _mutation(data: st.DataObject, original: object) -> bytes:
    """JSON text of ``original`` with one random change at a random place."""
    path = data.draw(st.sampled_from(_paths(original)), label="path")
    here = _get(original, path)
    kind = data.draw(st.sampled_from(["swap", "deep", "drop", "cut", "grow"]), label="mutation")
    if kind == "swap":
        new = data.draw(VALUES, label="value")
    elif kind == "deep":
        depth = data.draw(st.integers(min_value=1, max_value=100_000), label="depth")
        inner = json.dumps(here)
        text = json.dumps(_replaced(original, path, DEEP))
        deep = "[" * depth + inner + "]" * depth
        return text.replace(json.dumps(DEEP), deep, 1).encode()
    elif kind == "drop" and isinstance(here, dict) and here:
        key = data.draw(st.sampled_from(sorted(here)), label="key")
        new = {k: v for k, v in here.items() if k != key}
    elif kind == "cut" and isinstance(here, list):
        new = here[: data.draw(st.integers(min_value=0, max_value=len(here)), label="length")]
    elif kind == "grow" and isinstance(here, list) and here:
        new = here * data.draw(st.integers(min_value=2, max_value=50), label="times")
    else:
        new = data.draw(SCALARS, label="scalar")
    return json.dumps(_replaced(original, path, new)).encode()


def _weight_meta(transform) -> bytes:
    """The real archive with every stored tensor's metadata passed through ``transform``."""
    config = json.loads(ENTRIES[WEIGHTS_JSON])
    for meta in config["config"].values():
        transform(meta["tensor_meta"])
    return with_json(WEIGHTS_JSON, config)


def _strides_too_few(meta: dict) -> None:
    meta["strides"] = meta["strides"][:-1]


def _meta_is_text(meta: dict) -> None:
    meta.clear()
    meta["sizes"] = "784"


def test_the_real_archive_is_accepted():
    assert answer(_zip(list(ENTRIES.items()))) == "accepted"


def test_the_failing_examples_hypothesis_found_are_answered_with_a_sentence():
    """The classes of the issue and what the fuzzing below found, kept as plain cases."""
    deep = b"[" * 200_000 + b"]" * 200_000
    entries = dict(ENTRIES, **{MODEL_JSON: deep})
    assert "nests more than 64 levels" in answer(_zip(list(entries.items())))
    assert "broken shape" in answer(_weight_meta(_strides_too_few))
    assert "not a list" in answer(_weight_meta(lambda meta: meta.update(sizes="784")))
    config = json.loads(ENTRIES[WEIGHTS_JSON])
    first = next(iter(config["config"]))
    config["config"][first]["tensor_meta"] = "a string where an object belongs"
    assert "unknown form" in answer(with_json(WEIGHTS_JSON, config))
    huge = {"as_int": 2**40}
    assert "broken shape" in answer(
        _weight_meta(lambda meta: meta.update(sizes=[huge, huge], strides=[huge, {"as_int": 1}]))
    )
    for code in (True, 1, 12):  # booleans are ints in Python: True would have meant uint8
        refused = answer(_weight_meta(lambda meta, code=code: meta.update(dtype=code)))
        assert "integers or booleans" in refused or "unsupported type" in refused
    config = json.loads(ENTRIES[WEIGHTS_JSON])
    config["config"]["1.bias"]["tensor_meta"]["sizes"] = []
    assert "broken shape" in answer(with_json(WEIGHTS_JSON, config))
    del config["config"]["1.bias"]["tensor_meta"]["sizes"]
    assert "broken shape" in answer(with_json(WEIGHTS_JSON, config))
    program = json.loads(ENTRIES[MODEL_JSON])
    assert "malformed" in answer(with_json(MODEL_JSON, _replaced(program, ("graph_module",), [])))


@FUZZ
@given(data=st.data())
def test_any_change_of_the_graph_json_is_accepted_or_refused_with_a_sentence(data):
    program = json.loads(ENTRIES[MODEL_JSON])
    answer(with_json(MODEL_JSON, _mutation(data, program)))


@FUZZ
@given(data=st.data())
def test_any_change_of_the_stored_tensor_list_is_accepted_or_refused_with_a_sentence(data):
    config = json.loads(ENTRIES[WEIGHTS_JSON])
    answer(with_json(WEIGHTS_JSON, _mutation(data, config)))


@FUZZ
@given(
    sizes=st.lists(st.integers(min_value=-3, max_value=2**40), max_size=12),
    strides=st.lists(st.integers(min_value=-3, max_value=2**40), max_size=12),
    offset=st.integers(min_value=-3, max_value=2**40),
)
@example(sizes=[784, 16], strides=[1], offset=0)
@example(sizes=[2**31, 2**31], strides=[1, 1], offset=0)
def test_any_sizes_strides_and_offset_of_a_stored_tensor_are_answered(sizes, strides, offset):
    def change(meta: dict) -> None:
        meta["sizes"] = [{"as_int": n} for n in sizes]
        meta["strides"] = [{"as_int": n} for n in strides]
        meta["storage_offset"] = {"as_int": offset}

    answer(_weight_meta(change))


@FUZZ
@given(
    dropped=st.sets(st.sampled_from(sorted(ENTRIES))),
    replaced=st.dictionaries(st.sampled_from(sorted(ENTRIES)), st.binary(max_size=64), max_size=3),
    extra=st.integers(min_value=0, max_value=60),
    extra_name=st.sampled_from(["data/weights/weight_{}", "data/constants/tensor_{}", "x{}"]),
    duplicated=st.booleans(),
)
def test_members_dropped_added_duplicated_or_replaced_are_answered(
    dropped, replaced, extra, extra_name, duplicated
):
    entries = [(n, replaced.get(n, d)) for n, d in ENTRIES.items() if n not in dropped]
    entries += [(extra_name.format(number + 10), b"\0" * 40) for number in range(extra)]
    if duplicated and entries:
        entries.append(entries[0])
    answer(_zip(entries))


@FUZZ
@given(
    cut=st.integers(min_value=0, max_value=len(_zip(list(ENTRIES.items())))),
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(1, 255)), max_size=8
    ),
)
@example(cut=10**7, flips=[(30, 1)])
def test_truncated_or_corrupted_bytes_are_answered(cut, flips):
    data = bytearray(_zip(list(ENTRIES.items()))[:cut])
    for position, value in flips:
        if data:
            data[position % len(data)] ^= value
    answer(bytes(data))


@pytest.mark.parametrize("count", [20_000])
def test_an_archive_of_many_members_is_refused_quickly(count):
    entries = list(ENTRIES.items()) + [(f"x{n}", b"") for n in range(count)]
    assert "too many files" in answer(_zip(entries))
