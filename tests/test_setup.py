"""The ways to set up describe the same pinned environments: the course's (pip and conda) and
the students' (requirements.txt and environment.yml in each exercise folder, in its zip)."""

import re
import tomllib
from pathlib import Path

import nbformat
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ("exercise_08", "exercise_08_optional")
STUDENT_PACKAGES = {
    "torch",
    "torchvision",
    "numpy",
    "jupyterlab",
    "ipywidgets",
    "matplotlib",
    "tqdm",
}


def requirement_lines(path: Path = REPO_ROOT / "requirements.txt") -> list[str]:
    lines = path.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def pins(path: Path) -> dict[str, str]:
    return dict(line.split("==") for line in requirement_lines(path))


def test_every_requirement_is_pinned_exactly():
    for path in [REPO_ROOT / "requirements.txt"] + [
        REPO_ROOT / exercise / "requirements.txt" for exercise in EXERCISES
    ]:
        for line in requirement_lines(path):
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9.+]*", line), (path, line)


def test_torch_is_pinned_to_the_release_on_this_machine():
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= set(requirement_lines())


def test_environment_yml_installs_requirements_txt_on_the_same_python():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in conda and "pip" in conda
    assert pip == ["-r requirements.txt"]
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.11,<3.12"
    assert "PYTHON_311 ?= python3.11" in (REPO_ROOT / "Makefile").read_text()


def test_each_exercise_ships_the_students_packages_with_the_course_pins():
    course = pins(REPO_ROOT / "requirements.txt")
    for exercise in EXERCISES:
        student = pins(REPO_ROOT / exercise / "requirements.txt")
        assert set(student) == STUDENT_PACKAGES, exercise
        assert student == {name: course[name] for name in STUDENT_PACKAGES}, exercise


def test_each_exercise_has_a_conda_file_for_its_requirements():
    for exercise in EXERCISES:
        env = yaml.safe_load((REPO_ROOT / exercise / "environment.yml").read_text())
        conda = [d for d in env["dependencies"] if isinstance(d, str)]
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert "python=3.11" in conda and "pip" in conda
        assert pip == ["-r requirements.txt"]


def test_the_students_are_told_how_to_get_pytorchs_cpu_wheels():
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    for exercise in EXERCISES:
        assert cpu_index in (REPO_ROOT / exercise / "requirements.txt").read_text()
        notebook = nbformat.read(next((REPO_ROOT / exercise).glob("*.ipynb")), as_version=4)
        first_cell = notebook.cells[0].source
        assert cpu_index in first_cell and "pip install -r requirements.txt" in first_cell
