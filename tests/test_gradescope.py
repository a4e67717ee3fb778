"""gradescope: the autograder zip of the stand-in exercise, unpacked into Gradescope's folder
layout (``autograder/{source,submission,results}``) and run with its own ``run_autograder`` in a
subprocess, as Gradescope runs it (but with this machine's Python instead of setup.sh's venv).

As root the layout lies at the top of the file system, like Gradescope's ``/autograder``: the
sandbox mounts a fresh ``/tmp`` and here covers ``/root`` (to reveal pyenv's Python), so the
package it reveals for the sandbox user must lie outside both."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import corpus_behaviour as cb
import pytest

from autograder import course, gradescope
from autograder.exercise_modules import exercise_code_module

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

LIMITS = {
    "AUTOGRADER_TIMEOUT_S": "120",
    "AUTOGRADER_CELL_TIMEOUT_S": "30",
    "AUTOGRADER_PROBE_TIMEOUT_S": "30",
}


NOT_FOR_GRADING = {
    "pytest",
    "pytest-xdist",
    "execnet",
    "ruff",
    "selenium",
    "hypothesis",
    "jupyter",
    "dask-jobqueue",
    "psycopg[binary]",
    "fastapi",
    "uvicorn",
}
"""The project's own test, lint and cluster tools: never installed on Gradescope's images."""


def _pins(text: str) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return dict(line.split("==", 1) for line in lines if line)


@pytest.fixture(scope="module")
def built(tmp_path_factory, prepared_data_dir) -> dict:
    """The stand-in exercise in a repository with the clutter a real one has (.git, course/,
    caches, a trained model), and the Gradescope zip built from it."""
    folder = tmp_path_factory.mktemp("gradescope")
    folder.chmod(0o755)
    repo = folder / "repo"
    exercise = cb.make_exercise(repo)
    for clutter in (".git/HEAD", "course/gradebook.db", "exercise_08/__pycache__/x.pyc"):
        (repo / clutter).parent.mkdir(parents=True, exist_ok=True)
        (repo / clutter).write_text("clutter")
    (exercise / "models").mkdir()
    (exercise / "models" / "classifier.pt2").write_bytes(b"the instructor's own model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(course, "REPO_ROOT", repo)
        built_zip = gradescope.build(
            folder / "course", "exercise_08", folder / "dist", data_dir=prepared_data_dir
        )
        again = gradescope.build(
            folder / "course", "exercise_08", folder / "dist2", data_dir=prepared_data_dir
        )
    return {
        "zip": built_zip,
        "again": again,
        "release": folder / "course" / "release" / "exercise_08",
    }


@pytest.fixture(scope="module")
def good_model(prepared_data_dir, tmp_path_factory) -> Path:
    """A classifier that passes the hidden check, exported as the notebook saves it."""
    import torch
    from torch import nn

    files = exercise_code_module("exercise_08", "mnist_files")
    raw = prepared_data_dir / "MNIST" / "raw"
    images = files.read_idx(raw / "train-images-idx3-ubyte")[:6000]
    labels = files.read_idx(raw / "train-labels-idx1-ubyte")[:6000]
    model = nn.Sequential(nn.Flatten(), cb.robust_classifier(images, labels)).eval()
    batch = torch.export.Dim("batch", min=1, max=100_000)
    program = torch.export.export(model, (torch.rand(4, 1, 28, 28),), dynamic_shapes=({0: batch},))
    path = tmp_path_factory.mktemp("model") / "classifier.pt2"
    torch.export.save(program, path)
    return path


@pytest.fixture
def base(tmp_path) -> Iterator[Path]:
    """Where the Gradescope folders go (see the module docstring)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="autograder-gradescope-test-", dir="/"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _layout(zip_path: Path, folder: Path) -> Path:
    """Gradescope's folders: the zip unpacked (with its modes) into ``source/``, run_autograder
    copied to the top, empty ``submission/`` and ``results/``; returns the ``autograder`` root."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    root = folder / "autograder"
    source = root / "source"
    with zipfile.ZipFile(zip_path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            target = source / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
            target.chmod((info.external_attr >> 16) & 0o777)
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    return root


def _run_autograder(root: Path, **env: str) -> tuple[dict, str, str]:
    """Run ``root/run_autograder``; returns results.json as data and as text, and its output."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    environment.pop("PYTHONPATH", None)
    environment |= LIMITS | {"AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    done = subprocess.run(
        [str(root / "run_autograder")],
        cwd=root,
        env=environment | env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (root / "results" / "results.json").read_text(encoding="utf-8")
    return json.loads(text), text, done.stdout + done.stderr


def _check_format(results: dict, text: str) -> None:
    """Gradescope's format, every test's numbers adding up to the score, no hidden test's
    source and no line breaks or control characters in what students see."""
    assert {"score", "output", "tests", "stdout_visibility", "execution_time"} <= set(results)
    assert results["stdout_visibility"] == "hidden"
    assert isinstance(results["execution_time"], int)
    for test in results["tests"]:
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test)
        assert 0 <= test["score"] <= test["max_score"]
    if results["tests"]:
        assert sum(t["score"] for t in results["tests"]) == results["score"]
        assert sum(t["max_score"] for t in results["tests"]) == 100
    shown = [results["output"]] + [t[k] for t in results["tests"] for k in ("name", "output")]
    assert all(value and value.isprintable() for value in shown), shown
    assert cb.HIDDEN_TEST_LINE not in text
    assert "value + 0 == 42" not in text


def test_the_zip_holds_the_autograder_and_its_data_and_nothing_else(built):
    with zipfile.ZipFile(built["zip"]) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        setup = archive.read("setup.sh").decode()
        requirements = archive.read("requirements.txt")
        run_script = archive.read("run_autograder").decode()
    names = set(infos)
    assert {
        "setup.sh",
        "run_autograder",
        "requirements.txt",
        "autograder/gradescope.py",
        "autograder/sandbox/isolate.py",
        "exercise_08/autoencoder.ipynb",
        "exercise_08/grading/verdicts.py",
        "data/hidden/course_key",
        "data/hidden/hidden-images-idx3-ubyte",
        "data/hidden/hidden-labels-idx1-ubyte",
        "data/hidden/manifest.json",
        "data/MNIST/raw/train-images-idx3-ubyte",
        "data/MNIST/raw/train-labels-idx1-ubyte",
        "data/splits/labeled_test.json",
    } <= names
    for name in names:
        parts = name.rstrip("/").split("/")
        assert not {".git", "course", "__pycache__", "models", "cache", "dist"} & set(parts), name
        assert not name.endswith((".pyc", ".pt2", ".zip")) and "t10k" not in name, name

    def mode(name: str) -> int:
        return (infos[name].external_attr >> 16) & 0o777

    assert (mode("setup.sh"), mode("run_autograder")) == (0o755, 0o755)
    assert (mode("data/hidden/"), mode("data/hidden/course_key")) == (0o700, 0o600)
    assert (mode("exercise_08/"), mode("exercise_08/grading/verdicts.py")) == (0o700, 0o600)
    assert (mode("data/"), mode("autograder/grade.py")) == (0o755, 0o644)
    shipped, pinned = _pins(requirements.decode()), _pins((ROOT / "requirements.txt").read_text())
    assert not set(shipped) & NOT_FOR_GRADING, "only what grading needs is installed"
    assert {"torch", "torchvision", "nbgrader", "sqlalchemy", "alembic"} <= set(shipped)
    assert not {"dask", "distributed"} & set(shipped), "one submission needs no cluster"
    assert shipped == {name: pinned[name] for name in shipped}, "the course's pins"
    assert "python3.11 -m venv /autograder/venv" in setup
    assert "install -r /autograder/source/requirements.txt" in setup
    syntax = subprocess.run(["bash", "-n"], input=setup, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr
    assert "gradescope-run" in run_script and "--assignment exercise_08" in run_script
    assert built["again"].read_bytes() == built["zip"].read_bytes()


def test_a_good_submission_unpacked_by_gradescope_gets_every_point(built, good_model, base):
    root = _layout(built["zip"], base)
    for private in (root / "source" / "exercise_08", root / "source", root):
        private.chmod(0o700)  # what run() must fix (or keep) as root
    folder = root / "submission" / "exercise_08"
    for name, data in cb.good_files(built["release"], good_model).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    results, text, output = _run_autograder(root)

    _check_format(results, text)
    assert f"with {(root / 'source' / 'autograder').resolve()}." in output
    assert results["score"] == 100.0, output[-3000:]
    assert results["output"] == "Every graded part passed."
    tests = [(t["name"], t["score"], t["max_score"]) for t in results["tests"]]
    assert tests == [
        ("answer() is right (test_answer)", 25.0, 25.0),
        ("Value is right (test_value)", 25.0, 25.0),
        ("Hidden test set accuracy (hidden_accuracy)", 50.0, 50.0),
    ]
    assert [t["output"] for t in results["tests"][:2]] == ["Passed.", "Passed."]
    hidden = results["tests"][2]["output"]
    # The accuracy and the pass mark, in the engine's sentence or the results' own.
    assert re.search(r"accuracy on the hidden test set(:| is) 0\.\d\d", hidden, re.I), hidden
    assert "0.55" in hidden, hidden
    assert results["extra_data"]["hidden_accuracy"] > 0.55
    if os.geteuid() == 0:
        modes = [stat.S_IMODE(p.stat().st_mode) for p in (root, root / "source")]
        assert modes == [0o711, 0o711]
        assert stat.S_IMODE((root / "source" / "exercise_08").stat().st_mode) == 0o700


def test_an_untouched_zip_gets_zero_with_a_reason_for_every_part(built, base):
    root = _layout(built["zip"], base)
    released = {
        p.relative_to(built["release"]).as_posix(): p.read_bytes()
        for p in built["release"].rglob("*")
        if p.is_file()
    }
    cb.write_zip(released, root / "submission" / "exercise_08.zip")

    results, text, output = _run_autograder(root)

    _check_format(results, text)
    assert results["score"] == 0.0, output[-3000:]
    assert [t["score"] for t in results["tests"]] == [0.0, 0.0, 0.0]
    assert all(t["output"] != "Passed." for t in results["tests"])
    assert "NotImplementedError" in results["tests"][0]["output"]
    assert "No models/classifier.pt2" in results["tests"][2]["output"]
    assert results["output"].startswith(results["tests"][0]["output"].rstrip("."))


def test_a_file_that_is_not_a_zip_gets_zero_and_collect_s_sentence(built, base):
    root = _layout(built["zip"], base)
    (root / "submission" / "exercise_08.zip").write_bytes(b"this is not a zip\n")

    results, text, output = _run_autograder(root)

    _check_format(results, text)
    assert results["score"] == 0.0
    assert [(t["name"], t["score"], t["max_score"]) for t in results["tests"]] == [
        ("Submission zip", 0.0, 100.0)
    ]
    assert results["output"].startswith("exercise_08.zip is not a zip archive")
    assert results["tests"][0]["output"] == results["output"]
    assert "submission.zip" not in text, "the message names the file the student uploaded"


def test_when_grading_cannot_run_the_results_still_say_why(built, base):
    empty = _layout(built["zip"], base / "empty")
    results, text, _ = _run_autograder(empty)
    _check_format(results, text)
    assert (results["score"], results["tests"]) == (0.0, [])
    assert results["output"] == (
        "Your submission is empty: upload the zip that create_submission() writes."
    )

    broken = _layout(built["zip"], base / "settings")
    (broken / "submission" / "autoencoder.ipynb").write_text("{}")
    results, text, output = _run_autograder(broken, AUTOGRADER_TIMEOUT_S="soon")
    _check_format(results, text)
    assert (results["score"], results["tests"]) == (0.0, []), output[-3000:]
    assert results["output"].startswith("The autograder could not grade this submission")
    assert "AUTOGRADER_TIMEOUT_S must be a number" in results["output"]

    no_python = _layout(built["zip"], base / "python")
    results, _, _ = _run_autograder(no_python, AUTOGRADER_PYTHON=str(base / "no-python"))
    assert results["score"] == 0 and "could not start (status 127)" in results["output"]


def test_the_real_notebooks_give_every_graded_cell_a_readable_name(tmp_path):
    titles = {}
    for assignment in course.ASSIGNMENTS:
        course.sync_source(tmp_path, assignment)
        titles |= gradescope._titles(tmp_path, assignment)
    assert titles["test_encoder"] == "Encoder"
    assert titles["test_autoencoder_steps"] == "The autoencoder steps"
    assert titles["test_dropout_forward"] == "dropout_forward"
    assert titles["test_batchnorm_forward"] == "batchnorm_forward in training mode"
    assert len(titles) == 17 and all(0 < len(title) <= 80 for title in titles.values())
