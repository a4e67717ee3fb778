"""release: real nbgrader generate_assignment, our .py stripping, and a leak scan that bites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import autograder_standin as standin
import pytest

from autograder import course
from autograder.course import AutograderError
from autograder.release import MIN_LEAK_CHARS, release, scan_release, strip_solutions

MARKERS = (standin.BEGIN_SOLUTION, standin.END_SOLUTION, standin.BEGIN_HIDDEN, standin.END_HIDDEN)


@pytest.fixture
def standin_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root holding the stand-in exercise as ``exercise_08``."""
    root = tmp_path / "repo"
    standin.make_exercise(root)
    monkeypatch.setattr(course, "REPO_ROOT", root)
    return root


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_release_strips_every_solution_and_names_what_to_implement(standin_repo, tmp_path):
    course_dir, dist = tmp_path / "course", tmp_path / "dist"

    (zip_path,) = release(course_dir, ["exercise_08"], dist_dir=dist)

    folder = course_dir / "release" / "exercise_08"
    text = _all_text(folder)
    for secret in (*standin.SECRET_LINES, *MARKERS):
        assert secret not in text
    model = (folder / "exercise_code" / "model.py").read_text()
    assert 'raise NotImplementedError("Implement double in exercise_code/model.py")' in model
    assert 'raise NotImplementedError("Implement Net.forward in exercise_code/model.py")' in model
    assert (folder / "exercise_code" / "helpers.py").read_text() == standin.HELPER
    cells = json.loads((folder / "standin.ipynb").read_text())["cells"]
    assert "raise NotImplementedError()" in "".join(cells[2]["source"])
    assert not (folder / "models").exists() and not list(folder.rglob("__pycache__"))
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert all(name.startswith("exercise_08/") for name in names)
        assert "exercise_08/standin.ipynb" in names
        assert all(secret.encode() not in archive.read(n) for n in names for secret in MARKERS)


@pytest.mark.slow
def test_release_is_repeatable_byte_for_byte(standin_repo, tmp_path):
    course_dir, dist = tmp_path / "course", tmp_path / "dist"
    first = release(course_dir, ["exercise_08"], dist_dir=dist)[0].read_bytes()
    second = release(course_dir, ["exercise_08"], dist_dir=dist)[0].read_bytes()
    assert first == second


@pytest.mark.slow
def test_release_records_the_graded_cells_in_the_gradebook(standin_repo, tmp_path):
    course_dir = tmp_path / "course"
    release(course_dir, ["exercise_08"], dist_dir=tmp_path / "dist")
    api = course.nbgrader_api(course_dir)
    with api.gradebook as gradebook:
        assignment = gradebook.find_assignment("exercise_08")
        assert assignment.max_score == 5
    config = (course_dir / "nbgrader_config.py").read_text()
    assert "'exercise_08': ['exercise_code/model.py']" in config


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "content"),
    [
        ("exercise_code/notes.md", f"Hint: {standin.SECRET_LINES[0]}\n"),
        ("exercise_code/given.py", f"def helper(x):\n    {standin.SECRET_LINES[1]}\n"),
        ("README.md", f"Use the markers like {standin.BEGIN_SOLUTION} in cells.\n"),
        ("exercise_code/t10k-labels-idx1-ubyte", "labels"),
    ],
)
def test_a_leaking_release_fails_loudly_and_leaves_no_zip(standin_repo, tmp_path, where, content):
    leaked = standin_repo / "exercise_08" / where
    leaked.write_text(content)

    with pytest.raises(AutograderError, match="leaks") as error:
        release(tmp_path / "course", ["exercise_08"], dist_dir=tmp_path / "dist")

    assert "fix the source and release again" in str(error.value)
    assert not (tmp_path / "dist" / "exercise_08.zip").exists()
    assert not list((tmp_path / "dist").iterdir()), "no staged zip may be left behind"
    assert not (tmp_path / "course" / "release" / "exercise_08").exists()


@pytest.mark.slow
def test_the_scan_flags_data_models_and_hidden_files_planted_in_a_release(standin_repo, tmp_path):
    (zip_path,) = release(tmp_path / "course", ["exercise_08"], dist_dir=tmp_path / "dist")
    source = tmp_path / "course" / "source" / "exercise_08"
    folder = tmp_path / "course" / "release" / "exercise_08"
    assert scan_release(source, folder, zip_path) == []
    planted_files = ("data/hidden/course_key", "models/classifier.pt2", "weights.pth")
    for planted in (*planted_files, "grading/verdicts.py"):
        (folder / planted).parent.mkdir(parents=True, exist_ok=True)
        (folder / planted).write_text("x")

    leaks = scan_release(source, folder, zip_path)

    for planted in ("course_key", "classifier.pt2", "weights.pth", "verdicts.py"):
        assert any(planted in leak and "must not be released" in leak for leak in leaks), leaks


TRUSTED_CHECK_LINE = "return {'answer': answer(), 'secret probe of the trusted check': 42}"


@pytest.mark.slow
def test_trusted_checks_are_never_released_and_a_copy_of_one_is_a_leak(standin_repo, tmp_path):
    grading = standin_repo / "exercise_08" / "grading"
    grading.mkdir()
    (grading / "probes.py").write_text(f"def run(check, seed, files):\n    {TRUSTED_CHECK_LINE}\n")
    (zip_path,) = release(tmp_path / "course", ["exercise_08"], dist_dir=tmp_path / "dist")
    names = zipfile.ZipFile(zip_path).namelist()
    assert not any("grading" in name for name in names)
    assert not (tmp_path / "course" / "source" / "exercise_08" / "grading").exists()

    notes = standin_repo / "exercise_08" / "exercise_code" / "notes.md"
    notes.write_text(f"How the grader checks it: `{TRUSTED_CHECK_LINE}`\n")
    with pytest.raises(AutograderError, match="leaks"):
        release(tmp_path / "course", ["exercise_08"], dist_dir=tmp_path / "dist")


@pytest.mark.slow
def test_release_with_a_course_dir_writes_nothing_outside_it(standin_repo, tmp_path):
    root = Path(__file__).resolve().parents[1]
    work = tmp_path / "cwd"
    work.mkdir()
    script = (
        "import sys; from pathlib import Path; from autograder import course, cli\n"
        f"course.REPO_ROOT = Path({str(standin_repo)!r})\n"
        "sys.exit(cli.main(['release', 'exercise_08', '--course-dir', 'mine']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in work.iterdir()) == ["mine"]
    assert (work / "mine" / "dist" / "exercise_08.zip").is_file()
    assert (work / "mine" / "exchange").is_dir()


def test_strip_solutions_rejects_unpaired_markers_and_stubs_module_level_regions():
    begin, end = standin.BEGIN_SOLUTION, standin.END_SOLUTION
    with pytest.raises(AutograderError, match="never closed"):
        strip_solutions(f"def f():\n    {begin}\n    return 1\n", "exercise_code/a.py")
    with pytest.raises(AutograderError, match="never opened"):
        strip_solutions(f"def f():\n    return 1\n    {end}\n", "exercise_code/a.py")
    with pytest.raises(AutograderError, match="inside another"):
        strip_solutions(f"{begin}\n{begin}\n{end}\n", "exercise_code/a.py")
    stripped = strip_solutions(f"{begin}\nLIMIT = 3\n{end}\n", "exercise_code/a.py")
    assert (
        'raise NotImplementedError("Implement the marked part in exercise_code/a.py")' in stripped
    )
    nested = (
        "class A:\n    class B:\n        def g(self):\n"
        f"            {begin}\n            return 1\n            {end}\n"
    )
    assert "Implement A.B.g in exercise_code/a.py" in strip_solutions(nested, "exercise_code/a.py")
    assert len("pass") < MIN_LEAK_CHARS


@pytest.mark.slow
def test_real_release_is_clean_and_unpacks_next_to_a_data_folder(tmp_path):
    course_dir, dist = tmp_path / "course", tmp_path / "dist"
    assignments = [a for a in course.ASSIGNMENTS if list(course.exercise_dir(a).glob("*.ipynb"))]

    zips = release(course_dir, assignments, dist_dir=dist)

    student = tmp_path / "student"
    with zipfile.ZipFile(zips[0]) as archive:
        archive.extractall(student)
    folder = student / "exercise_08"
    assert (folder / "autoencoder.ipynb").is_file()
    env = {k: v for k, v in os.environ.items() if k != "COURSE_DATA_DIR"}
    found = subprocess.run(
        [sys.executable, "-c", "from exercise_code import data; print(data.DATA_DIR)"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    assert Path(found).resolve() == (student / "data").resolve()
    for module in course.student_modules("exercise_08"):
        text = (folder / module).read_text()
        assert "raise NotImplementedError(" in text and standin.BEGIN_SOLUTION not in text


@pytest.mark.slow
def test_unpaired_markers_in_a_module_stop_the_release_and_leave_no_student_version(
    standin_repo, tmp_path
):
    module = standin_repo / "exercise_08" / "exercise_code" / "model.py"
    module.write_text(module.read_text().replace(standin.END_SOLUTION, "", 1))

    with pytest.raises(AutograderError, match="never closed|inside another"):
        release(tmp_path / "course", ["exercise_08"], dist_dir=tmp_path / "dist")

    assert not (tmp_path / "course" / "release" / "exercise_08").exists()
    assert not (tmp_path / "dist" / "exercise_08.zip").exists()
