"""The stand-in exercise as a released course, for the tests of grading and the engine.

Fixtures (``models``: the corpus's classifiers, made once per module; ``standin_course``: a
course with the released stand-in as ``exercise_08``, the repository root patched to it) and
helpers to collect corpus kinds into it and to grade with short limits.
"""

from __future__ import annotations

from pathlib import Path

import corpus_behaviour as cb
import pytest

from autograder import collect, course, release
from autograder.core.settings import GradeSettings
from autograder.exercise_modules import exercise_code_module


@pytest.fixture(scope="module")
def models(prepared_data_dir, tmp_path_factory) -> dict[str, Path]:
    files = exercise_code_module("exercise_08", "mnist_files")
    raw = prepared_data_dir / "MNIST" / "raw"
    images = files.read_idx(raw / "train-images-idx3-ubyte")
    labels = files.read_idx(raw / "train-labels-idx1-ubyte")
    return cb.make_models(tmp_path_factory.mktemp("models"), images, labels)


@pytest.fixture
def standin_course(tmp_path, monkeypatch) -> Path:
    """A course with the released stand-in exercise as ``exercise_08``."""
    tmp_path.chmod(0o755)
    repo = tmp_path / "repo"
    cb.make_exercise(repo)
    monkeypatch.setattr(course, "REPO_ROOT", repo)
    course_dir = tmp_path / "course"
    release.release(course_dir, ["exercise_08"], dist_dir=tmp_path / "dist")
    return course_dir


def grade_settings(data_dir: Path) -> GradeSettings:
    """Short limits for the one-second stand-in."""
    return GradeSettings(
        autograde_timeout_s=120, cell_timeout_s=30, probe_timeout_s=30, data_dir=data_dir
    )


def collect_kinds(course_dir: Path, models: dict, data_dir: Path, kinds: list[str]) -> None:
    """Zip each corpus kind (tests/corpus_behaviour.py) and collect them all."""
    zips = course_dir.parent / "zips"
    zips.mkdir(exist_ok=True)
    context = {"models": models, "course_dir": course_dir, "data_dir": data_dir}
    release_dir = course_dir / "release" / "exercise_08"
    for kind, files in cb.corpus(release_dir, context, kinds).items():
        cb.write_zip(files, zips / f"{kind.replace('_', '-')}.zip")
    collect.collect(course_dir, "exercise_08", [zips])
