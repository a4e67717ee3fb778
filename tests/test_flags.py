"""The grade table's flag points at tampering, not at the difference between a lenient public check
and a stricter trusted one (issue 24).

A cell is flagged when the notebook's own test of it passed, the trusted verdict lost points AND
the probe's run of the same public check (the notebook's public line, on the handed-in code)
failed, or when the probe's data was poisoned. An encoder hard-coded to two hidden layers passes
``checks.check_encoder()`` (the default sizes have two) and fails the trusted check (other
sizes): an honest mistake, never flagged.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_trusted_checks import _as_data, _probes, mutated_copy

from autograder.core.records import Verdict
from autograder.grading import trusted
from autograder.grading.submission import flag_text, flagged_cells

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
SHARED_CACHE = ROOT / "course" / "demo" / "cache"

REFERENCE_ENCODER = """        sizes = [NUM_PIXELS, *self.hidden_sizes]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], latent_dim))
        self.layers = nn.Sequential(*layers)
"""
TWO_LAYER_ENCODER = """        first, second = self.hidden_sizes[0], self.hidden_sizes[-1]
        self.layers = nn.Sequential(
            nn.Linear(NUM_PIXELS, first),
            nn.ReLU(),
            nn.Linear(first, second),
            nn.ReLU(),
            nn.Linear(second, latent_dim),
        )
"""
"""The issue's honest mistake: always two hidden layers, whatever ``hidden_sizes`` holds."""
RELU_AT_THE_END = """        layers.append(nn.Linear(sizes[-1], latent_dim))
        self.layers = nn.Sequential(*layers)
"""
RELU_AT_THE_END_NEW = """        layers += [nn.Linear(sizes[-1], latent_dim), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
"""
"""A mistake the public check catches as well."""


def _judge_cell(exercise: str, code: Path, cell: str) -> trusted.Judgement:
    """The probe of ``cell`` on ``code/exercise_code`` (no sandbox), judged as the grader does."""
    names = [m for m in sys.modules if m == "exercise_code" or m.startswith("exercise_code.")]
    for name in names:
        del sys.modules[name]
    sys.path.insert(0, str(code))
    try:
        seed = trusted.check_seed(b"k" * 32, "submission", cell)
        data = _as_data(_probes(exercise).run(cell, seed, str(code)))
        context = trusted.Context(exercise, seed, DATA_DIR)
        return trusted.judge_probe(
            trusted.verdicts(exercise), cell, trusted.ProbeData(data), context
        )
    finally:
        sys.path.remove(str(code))
        for name in [
            m for m in sys.modules if m == "exercise_code" or m.startswith("exercise_code.")
        ]:
            del sys.modules[name]


def test_an_encoder_hard_coded_to_two_layers_loses_the_cell_but_is_no_sign_of_tampering(tmp_path):
    code = mutated_copy(
        "exercise_08", tmp_path, "networks.py", REFERENCE_ENCODER, TWO_LAYER_ENCODER
    )
    judgement = _judge_cell("exercise_08", code, "test_encoder")
    assert judgement.passed is False and "linear layers" in judgement.message
    assert (judgement.public_passed, judgement.poisoned, judgement.suspect) == (True, False, False)


def test_a_mistake_the_public_check_catches_too_is_a_sign_of_tampering_if_the_notebook_passed(
    tmp_path,
):
    code = mutated_copy(
        "exercise_08", tmp_path, "networks.py", RELU_AT_THE_END, RELU_AT_THE_END_NEW
    )
    judgement = _judge_cell("exercise_08", code, "test_encoder")
    assert judgement.passed is False and judgement.public_passed is False
    assert judgement.suspect is True


def test_the_reference_passes_its_public_checks_in_every_probe():
    for exercise in ("exercise_08", "exercise_08_optional"):
        code = ROOT / exercise
        verdicts = trusted.verdicts(exercise)
        for cell in verdicts.JUDGES:
            if cell == "test_trained_autoencoder":
                continue  # no public check in its probe: see below
            judgement = _judge_cell(exercise, code, cell)
            assert (cell, judgement.passed, judgement.public_passed) == (cell, True, True)


def test_the_trained_autoencoder_has_no_public_check_in_its_probe(tmp_path):
    data = _probes("exercise_08").run("test_trained_autoencoder", 1, str(tmp_path))
    assert data == {"missing": True, "public_check": trusted.NO_PUBLIC_CHECK}
    judgement = trusted.judge_probe(
        trusted.verdicts("exercise_08"),
        "test_trained_autoencoder",
        trusted.ProbeData(data),
        trusted.Context("exercise_08", 1, DATA_DIR),
    )
    assert judgement.passed is False and judgement.public_passed is None
    assert judgement.suspect is False


@pytest.mark.parametrize("exercise", ["exercise_08", "exercise_08_optional"])
def test_a_public_check_that_exits_or_runs_too_long_only_fails_its_own_entry(exercise, monkeypatch):
    probes = _probes(exercise)
    assert probes.public_check(lambda: None) == "passed"
    assert probes.public_check(lambda: sys.exit(3)) == "SystemExit: 3"
    assert probes.public_check(lambda: print("noise") or 1 / 0).startswith("ZeroDivisionError")
    monkeypatch.setattr(probes, "PUBLIC_CHECK_SECONDS", 0.2)

    def endless() -> None:
        while True:
            pass

    assert "took longer than 0.2 s" in probes.public_check(endless)


class _Verdicts:
    """A stand-in verdicts module: value must be 42."""

    @staticmethod
    def judge(cell, data, context):
        if isinstance(data["value"], str):
            raise TypeError("a verdict that meets data of the wrong type")
        return (data["value"] == 42, "value is not 42")


@pytest.mark.parametrize(
    "values, passed, public_passed, suspect",
    [
        ({"value": 42, "public_check": "passed"}, True, True, False),
        ({"value": 41, "public_check": "passed"}, False, True, False),  # only the hidden check
        ({"value": 41, "public_check": "AssertionError: no"}, False, False, True),
        ({"value": 41, "public_check": "none"}, False, None, False),  # no public check
        ({"value": 41}, False, None, True),  # not what a probe writes: its data was replaced
        ({"value": float("nan"), "public_check": 7}, False, None, True),
        ({"value": "41", "public_check": "passed"}, False, True, True),  # wrong types
        ({"probe_error": "ValueError: x", "public_check": "passed"}, False, True, False),
        ({"probe_error": "ValueError: x", "public_check": "ValueError: x"}, False, False, True),
    ],
)
def test_the_judgement_says_whether_a_lost_cell_points_at_tampering(
    values, passed, public_passed, suspect
):
    judgement = trusted.judge_probe(_Verdicts, "test_x", trusted.ProbeData(values), None)
    assert (judgement.passed, judgement.public_passed, judgement.suspect) == (
        passed,
        public_passed,
        suspect,
    )


def test_unusable_probe_data_is_always_suspect():
    judgement = trusted.judge_probe(_Verdicts, "test_x", trusted.ProbeData(None, "a bomb"), None)
    assert judgement.passed is False and judgement.poisoned and judgement.suspect


def test_only_suspect_lost_cells_whose_notebook_test_passed_are_flagged():
    verdicts = {
        "honest": Verdict(0.0, 6.0, "lost", suspect=False),
        "tampered": Verdict(0.0, 6.0, "lost", suspect=True),
        "failed_in_notebook": Verdict(0.0, 6.0, "lost", suspect=True),
        "full": Verdict(6.0, 6.0, "", suspect=True),
    }
    passed = {"honest", "tampered", "full"}
    assert flagged_cells(passed, verdicts) == ["tampered"]
    assert flag_text(["tampered"]) == (
        "the notebook's test of tampered passed where the same public check fails on this code: "
        "look at this submission"
    )
    assert flag_text([]) == ""


def _two_layer_encoder_zip(reference: Path, target: Path) -> Path:
    with zipfile.ZipFile(reference) as source, zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "exercise_code/networks.py":
                text = data.decode()
                assert REFERENCE_ENCODER in text
                data = text.replace(REFERENCE_ENCODER, TWO_LAYER_ENCODER, 1).encode()
            out.writestr(item, data)
    return target


@pytest.mark.slow
def test_graded_end_to_end_the_two_layer_encoder_loses_its_points_and_is_not_flagged(
    tmp_path, prepared_data_dir
):
    """The real exercise_08: release, collect, grade, the grade table's row."""
    from autograder.collect import collect
    from autograder.demo import reference_zip
    from autograder.grade import grade
    from autograder.release import release
    from autograder.results import read_result

    cached = sorted(SHARED_CACHE.glob("reference-*.zip"))
    reference = cached[-1] if cached else reference_zip(SHARED_CACHE, prepared_data_dir)
    course_dir, inbox = tmp_path / "course", tmp_path / "inbox"
    release(course_dir, ["exercise_08"], dist_dir=tmp_path / "dist")
    inbox.mkdir()
    _two_layer_encoder_zip(reference, inbox / "honest.zip")
    collect(course_dir, "exercise_08", [inbox])
    grade(course_dir, "exercise_08")
    record = read_result(course_dir, "exercise_08", "honest")
    parts = {d["item"]: d for d in record["details"]}
    lost = {item for item, d in parts.items() if d["score"] < d["max"]}
    assert lost == {"autoencoder: test_encoder"}, record
    assert record["message"].startswith("Encoder("), record["message"]
    assert record["flags"] == "", record["flags"]
    shutil.rmtree(course_dir, ignore_errors=True)
    assert np.isclose(record["total"], record["total_max"] - 6)


def _one_hot(labels, n: int) -> np.ndarray:
    logits = np.zeros((n, 10), dtype=np.float32)
    logits[np.arange(n), np.asarray(labels)] = 5.0
    return logits


def test_a_saved_classifier_that_passes_the_public_test_split_is_not_flagged_for_the_rest(
    prepared_data_dir,
):
    """test_saved_classifier's public line: 60% on the public test split. The trusted check also
    wants 60% on the validation split: missing only that is an honest mistake."""
    context = trusted.Context("exercise_08", 1, DATA_DIR)
    verdicts = trusted.verdicts("exercise_08")
    test, val = context.split("labeled_test"), context.split("labeled_val")
    wrong_val = _one_hot((np.asarray(val.labels) + 1) % 10, len(val.labels))
    good_test = _one_hot(test.labels, len(test.labels))
    wrong_test = _one_hot((np.asarray(test.labels) + 1) % 10, len(test.labels))
    singles = np.zeros((5, 10), dtype=np.float32)

    def judged(test_logits):
        logits = np.concatenate([test_logits, wrong_val])
        return trusted.judge_saved_model(
            verdicts, "test_saved_classifier", logits, singles, singles.copy(), context
        )

    honest = judged(good_test)
    assert honest.passed is False and "validation split" in honest.message
    assert (honest.public_passed, honest.suspect) == (True, False)
    caught = judged(wrong_test)
    assert (caught.passed, caught.public_passed, caught.suspect) == (False, False, True)
