"""What a sandbox hands back is hostile data: NaN never passes, no header or archive makes the
grader allocate what it declares, and every failure is that part's 0 with a sentence.

Item 1 (numbers): every judge of both exercises gets the reference solution's real probe data
with one number made NaN, +inf or -inf, and must fail with a sentence that names it.
Item 2 (arrays and JSON): the readers of :mod:`autograder.sandbox.untrusted` and
:func:`autograder.grading.trusted.load_probe_data` get a huge ``.npy`` header, a decompression
bomb, an
object array, too many members, over-deep and over-long JSON: each comes back refused with a
reason, in bounded memory, and never raises.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_trusted_checks import _as_data, _probes, saved_autoencoder  # noqa: F401

from autograder.grading import hidden_check, trusted
from autograder.sandbox import untrusted

ROOT = Path(__file__).resolve().parents[1]
BAD_NUMBERS = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}
NO_GRADIENT_MARK = "grads"
"""Step probes mark "no gradients" with NaN gradients: those keys are judged by the weights."""


def _reference_data(exercise: str, code: Path, files: Path, data_dir: Path) -> dict:
    """``{cell: (data, context)}``: the reference solution's probe data for every judge."""
    for name in [m for m in sys.modules if m == "exercise_code" or m.startswith("exercise_code.")]:
        del sys.modules[name]
    sys.path.insert(0, str(code))
    try:
        probes, judges = _probes(exercise), trusted.verdicts(exercise)
        found = {}
        for cell in judges.JUDGES:
            seed = trusted.check_seed(b"k" * 32, "hostile", cell)
            context = trusted.Context(exercise, seed, data_dir)
            found[cell] = (_as_data(probes.run(cell, seed, str(files))), context)
        return found
    finally:
        sys.path.remove(str(code))
        for name in [
            m for m in sys.modules if m == "exercise_code" or m.startswith("exercise_code.")
        ]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def reference(saved_autoencoder, prepared_data_dir) -> dict:  # noqa: F811
    """``{(exercise, cell): (data, context)}`` for both exercises, all passing as they are."""
    found = {}
    for exercise, files in (
        ("exercise_08", saved_autoencoder),
        ("exercise_08_optional", ROOT / "exercise_08_optional"),
    ):
        cells = _reference_data(exercise, ROOT / exercise, files, prepared_data_dir)
        found |= {(exercise, cell): value for cell, value in cells.items()}
    return found


def _float_keys(data: dict) -> list[str]:
    """Keys of float arrays and of lists of floats (the numbers a judge compares)."""
    keys = []
    for key, value in data.items():
        if NO_GRADIENT_MARK in key:
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size:
            keys.append(key)
        elif isinstance(value, list) and value and all(type(v) is float for v in value):
            keys.append(key)
    return keys


def _poisoned(data: dict, key: str, number: float) -> dict:
    """A copy of ``data`` whose ``key`` has its first number replaced by ``number``."""
    value = data[key]
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.flat[0] = number
    else:
        value = [number, *value[1:]]
    return {**data, key: value}


CELLS = [
    ("exercise_08", cell)
    for cell in (
        "test_encoder",
        "test_decoder",
        "test_autoencoder",
        "test_classifier",
        "test_autoencoder_steps",
        "test_classifier_steps",
        "test_trained_autoencoder",
    )
] + [
    ("exercise_08_optional", cell)
    for cell in (
        "test_dropout_forward",
        "test_dropout_backward",
        "test_batchnorm_forward",
        "test_batchnorm_running_stats",
        "test_batchnorm_backward",
        "test_layernorm_forward",
        "test_layernorm_backward",
    )
]


def test_every_judge_is_covered_and_passes_the_reference(reference):
    judged = {key for key in reference if key[1] != "test_label_breaking"}
    assert judged == set(CELLS)
    for (exercise, cell), (data, context) in reference.items():
        verdicts = trusted.verdicts(exercise)
        assert verdicts.judge(cell, data, context) == (True, ""), cell


@pytest.mark.parametrize("bad", sorted(BAD_NUMBERS))
@pytest.mark.parametrize("exercise,cell", CELLS)
def test_a_non_finite_number_anywhere_in_probe_data_fails_with_a_sentence_naming_it(
    reference, exercise, cell, bad
):
    data, context = reference[(exercise, cell)]
    verdicts = trusted.verdicts(exercise)
    keys = _float_keys(data)
    assert keys, f"{cell} has no numbers to poison"
    for key in keys:
        passed, message = verdicts.judge(cell, _poisoned(data, key, BAD_NUMBERS[bad]), context)
        assert passed is False, f"{cell} passed with {bad} in {key}"
        assert "NaN or infinite" in message, (key, message)


@pytest.mark.parametrize("bad", sorted(BAD_NUMBERS))
def test_a_saved_autoencoder_with_one_non_finite_weight_gets_no_points(reference, bad):
    data, context = reference[("exercise_08", "test_trained_autoencoder")]
    verdicts = trusted.verdicts("exercise_08")
    passed, message = verdicts.judge(
        "test_trained_autoencoder", _poisoned(data, "w0", BAD_NUMBERS[bad]), context
    )
    assert not passed
    assert message.startswith("Your saved autoencoder has NaN or infinite weights (w0)")


def test_load_linear_refuses_non_finite_weights(reference):
    from torch import nn

    verdicts = trusted.verdicts("exercise_08")
    weight = np.zeros((3, 2), dtype=np.float32)
    for bad in BAD_NUMBERS.values():
        poisoned = weight.copy()
        poisoned[1, 1] = bad
        data = {"w0": poisoned, "b0": np.zeros(3, dtype=np.float32)}
        assert verdicts._load_linear(nn.Linear(2, 3), data, "") is False
    assert verdicts._load_linear(nn.Linear(2, 3), {"w0": weight, "b0": np.zeros(3)}, "")


@pytest.mark.parametrize("bad", sorted(BAD_NUMBERS))
def test_the_saved_classifier_and_the_hidden_check_fail_non_finite_logits(reference, bad):
    _, context = reference[("exercise_08", "test_trained_autoencoder")]
    verdicts = trusted.verdicts("exercise_08")
    images = verdicts.model_images(context)
    labels = np.concatenate(
        [context.split("labeled_test").labels.numpy(), context.split("labeled_val").labels]
    )
    logits = np.eye(10, dtype=np.float32)[labels] * 5
    assert verdicts.judge_saved_classifier(logits, logits[:5], logits[:5], context) == (True, "")
    logits[3, 0] = BAD_NUMBERS[bad]
    assert len(images) == len(logits)
    passed, message = verdicts.judge_saved_classifier(logits, logits[:5], logits[:5], context)
    assert not passed and "NaN or infinite" in message
    run = hidden_check.ModelRun(logits=logits, singles=logits[:5])
    hidden = hidden_check.hidden_result(run, labels, 50, 0.55)
    assert hidden.score == 0 and "NaN or infinite" in hidden.message


def test_judge_probe_never_raises_and_always_has_a_sentence(reference):
    data, context = reference[("exercise_08", "test_classifier")]
    verdicts = trusted.verdicts("exercise_08")
    assert trusted.judge_probe(verdicts, "test_classifier", trusted.ProbeData(data), context) == (
        trusted.Judgement(True, "")
    )
    weird = {**data, "head_sizes": {"not": "a list"}, "logits": "text", "head_w0": [[1]]}
    for values in (weird, {"keeps_encoder": True, "head_sizes": [[5, 10]]}, {}):
        judged = trusted.judge_probe(
            verdicts, "test_classifier", trusted.ProbeData(values), context
        )
        assert not judged.passed and judged.message
    unusable = trusted.judge_probe(
        verdicts, "test_classifier", trusted.ProbeData(None, "its JSON is nested"), context
    )
    assert not unusable.passed and "no usable data from your code (its JSON is nested" in (
        unusable.message
    )

    class Exploding:
        @staticmethod
        def judge(cell, values, context):
            raise MemoryError

    judged = trusted.judge_probe(Exploding, "test_x", trusted.ProbeData({}), context)
    assert not judged.passed and "MemoryError" in judged.message


def test_the_quiz_answer_of_the_wrong_type_fails_with_a_sentence(reference):
    _, context = reference[("exercise_08_optional", "test_dropout_forward")]
    verdicts = trusted.verdicts("exercise_08_optional")
    for answer in ([["flip"]], "flip", [1, 2]):
        passed, message = verdicts.judge("test_label_breaking", {"answer": answer}, context)
        assert not passed and "set of transform names" in message


# ----------------------------------------------------------------------------- item 2


def _npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    stream = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue()


def _npz(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return stream.getvalue()


def _npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=True)
    return stream.getvalue()


def _probe_folder(tmp_path: Path, npz: bytes, values: bytes = b"{}") -> Path:
    (tmp_path / "data.npz").write_bytes(npz)
    (tmp_path / "data.json").write_bytes(values)
    return tmp_path


def test_ordinary_probe_data_reads_back_exactly(tmp_path):
    arrays = {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "flags": np.array([True, False]),
        "empty": np.zeros((0, 3)),
    }
    np.savez(tmp_path / "data.npz", **arrays)
    (tmp_path / "data.json").write_text(json.dumps({"n": 3, "nested": {"a": [1, 2]}}))
    read = trusted.load_probe_data(tmp_path)
    assert read.problem == "" and read.values["n"] == 3
    for name, array in arrays.items():
        assert np.array_equal(read.values[name], array) and read.values[name].dtype == array.dtype
    assert read.values["w"].flags.writeable


def test_an_npy_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    huge = _npy_header((10**6, 10**6)) + bytes(64)
    folder = _probe_folder(tmp_path, _npz({"w.npy": huge}))
    read = trusted.load_probe_data(folder)
    assert read.values is None and "declares 8,000,000,000,000 bytes" in read.problem
    (tmp_path / "logits.npy").write_bytes(_npy_header((2**40,)) + bytes(80))
    assert untrusted.read_array(tmp_path, "logits.npy", 10_000) is None
    with pytest.raises(untrusted.UnusableData, match="declares"):
        untrusted.load_array(tmp_path, "logits.npy", 10_000)


PEAK = """
import sys
from pathlib import Path
from autograder.grading import trusted
read = trusted.load_probe_data(Path(sys.argv[1]))
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(int(peak) // 1024, read.problem)
"""


def _read_in_a_fresh_process(folder: Path) -> tuple[int, str]:
    """Peak resident MB of a fresh grader process reading ``folder``, and its problem."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(folder)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak, _, problem = done.stdout.strip().partition(" ")
    return int(peak), problem


def _bomb(inflated: int, declared_bytes: int | None = None) -> bytes:
    """An npz whose one member inflates to ``inflated`` bytes of zeros (a few hundred KB);
    ``declared_bytes`` makes its central directory lie about that size."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("w.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((inflated // 8,)))
            for _ in range(inflated // 2**24):
                member.write(bytes(2**24))
    bomb = bytearray(stream.getvalue())
    if declared_bytes is not None:
        entry = bomb.rfind(b"PK\x01\x02")
        bomb[entry + 24 : entry + 28] = declared_bytes.to_bytes(4, "little")
    return bytes(bomb)


def test_an_npz_bomb_is_refused_without_being_inflated(tmp_path):
    inflated = 512 * 2**20
    bomb = _bomb(inflated)
    assert len(bomb) < 1_000_000
    peak, problem = _read_in_a_fresh_process(_probe_folder(tmp_path, bomb))
    assert "unpack to 536,871,040 bytes (at most 134,217,728)" in problem
    assert peak < 250, f"a {len(bomb):,}-byte file took the grader to {peak} MB"


def test_an_npz_bomb_that_lies_about_its_size_is_read_with_a_bound(tmp_path):
    bomb = _bomb(512 * 2**20, declared_bytes=1024)
    peak, problem = _read_in_a_fresh_process(_probe_folder(tmp_path, bomb))
    assert problem, "a member that unpacks to more than it declares is refused"
    assert peak < 250, f"the bomb was inflated: {peak} MB"


def test_npz_refusals_each_say_why(tmp_path):
    cases = {
        "object dtype": (
            _npz({"o.npy": _npy(np.array([{"a": 1}], dtype=object))}),
            "dtype object",
        ),
        "complex": (_npz({"c.npy": _npy(np.array([1j]))}), "dtype complex128"),
        "structured": (
            _npz({"s.npy": _npy(np.zeros(2, dtype=[("a", "<f4")]))}),
            "not bool, int or float",
        ),
        "too many members": (
            _npz({f"m{i}.npy": _npy(np.zeros(1)) for i in range(untrusted.MAX_NPZ_MEMBERS + 1)}),
            "more than 4,096 arrays",
        ),
        "not a zip": (b"PK\x03\x04 not really", "cannot be read (BadZipFile)"),
        "short data": (_npz({"w.npy": _npy_header((100,)) + bytes(8)}), "but holds 8"),
        "huge header": (
            _npz({"w.npy": b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little") + b"{"}),
            "cannot be read",
        ),
    }
    for name, (npz, words) in cases.items():
        read = trusted.load_probe_data(_probe_folder(tmp_path, npz))
        assert read.values is None and words in read.problem, (name, read.problem)


def test_json_nested_too_deep_or_too_long_is_refused_before_parsing(tmp_path):
    good_npz = _npz({"w.npy": _npy(np.zeros(2))})
    deep = b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    read = trusted.load_probe_data(_probe_folder(tmp_path, good_npz, deep))
    assert read.values is None and "nested more than 64 levels" in read.problem
    tricky = json.dumps({"s": "[" * 1000 + '\\"' + "{" * 1000, "n": [[1]]}).encode()
    read = trusted.load_probe_data(_probe_folder(tmp_path, good_npz, tricky))
    assert read.problem == "" and read.values["n"] == [[1]], "brackets in strings do not count"
    (tmp_path / "many.json").write_bytes(b"[" + b"0," * 10 + b"0]")
    with pytest.raises(untrusted.UnusableData, match="holds 10 values"):
        untrusted.load_json(tmp_path, "many.json", 1000, max_items=5)
    for text in (b"[1]", b'"text"', b"\xff\xfe", b"{", b'{"a": NaN}'):
        (tmp_path / "odd.json").write_bytes(text)
        value = untrusted.read_json(tmp_path, "odd.json", 1000)
        assert value is None or math.isnan(value["a"])


def test_load_probe_data_never_raises_even_when_reading_runs_out_of_memory(tmp_path, monkeypatch):
    folder = _probe_folder(tmp_path, _npz({"w.npy": _npy(np.zeros(2))}))

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(np, "frombuffer", exhausted)
    read = trusted.load_probe_data(folder)
    assert read.values is None and "more memory than the grader allows" in read.problem
    assert trusted.read_probe_data(folder) is None


# ----------------------------------------------------------------------------- item 3


def test_run_model_answers_a_validator_crash_with_a_sentence(tmp_path):
    """Whatever the validator raises (here a bug of its own), the model gets a rule sentence
    and the submission keeps its other points; run_model never reaches the sandbox."""
    model = tmp_path / "classifier.pt2"
    model.write_bytes(b"PK\x05\x06" + bytes(18))

    class BrokenRules:
        class ModelRuleError(Exception):
            pass

        @staticmethod
        def check_model_archive(path):
            raise RecursionError("maximum recursion depth exceeded")

    run = hidden_check.run_model(None, BrokenRules, model, tmp_path, 1, tmp_path, None)
    assert run.logits is None and run.rule.startswith(
        "models/classifier.pt2 could not be read as a valid exported program (RecursionError)"
    )
    assert "save the final model again with save_model" in run.rule


def test_the_validator_turns_any_unforeseen_error_into_its_own_sentence(tmp_path, monkeypatch):
    from autograder.exercise_modules import exercise_code_module

    rules = exercise_code_module("exercise_08", "model_rules")
    model = tmp_path / "classifier.pt2"
    model.write_bytes(b"anything")

    def overflowing(path):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setattr(rules, "_check_archive", overflowing)
    with pytest.raises(rules.ModelRuleError, match="could not be read as a valid exported program"):
        rules.check_model_archive(model)


def test_the_hidden_message_states_the_accuracy_and_the_pass_mark_when_passed():
    labels = np.arange(100) % 10
    logits = np.eye(10, dtype=np.float32)[labels]
    run = hidden_check.ModelRun(logits=logits, singles=logits[:5])
    passed = hidden_check.hidden_result(run, labels, 50, 0.55)
    assert passed.score == 50 and passed.message == (
        "Your model's accuracy on the hidden test set is 1.00, at least the 0.55 needed: all "
        "50 points."
    )
