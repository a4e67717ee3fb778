"""Typical student mistakes planted in a copy of an exercise's source solution.

A :class:`Mutation` is one mistake, written as an exact text substitution in one module of
``exercise_code/``. :func:`failures_of` copies the package into a temporary folder, plants the
mistake, imports the copy under a name of its own (the real package is never touched) and runs
the check calls of the notebook's graded cells on it (:func:`graded_check_calls`), in the
notebook's order; it returns the message of every graded cell that failed. The mutation tests
(``test_mutations_*.py``) assert that exactly the graded cell of the part with the mistake
fails, with a message that names the cause.

Run a test module as a script to print its table of mistakes and messages.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat

Checks = dict[str, Callable[[ModuleType], None]]
"""Graded cell id -> a function running that cell's checks on the imported package."""


@dataclass(frozen=True)
class Mutation:
    mistake: str
    """What the student did, in words."""
    module: str
    """The file under exercise_code/ that gets the mistake."""
    old: str
    """Text of the source solution (it must occur exactly once in the module)."""
    new: str
    """What the student wrote instead."""
    check: str
    """The graded cell (grade id) whose checks must fail."""
    says: tuple[str, ...]
    """Fragments its message must contain: the cause and what to change."""


def plant(package: Path, mutation: Mutation | None, destination: Path) -> Path:
    """A copy of ``package`` (its .py files) in ``destination`` with the mistake planted."""
    copy = destination / "exercise_code"
    copy.mkdir(parents=True)
    for source in package.glob("*.py"):
        shutil.copyfile(source, copy / source.name)
    if mutation is not None:
        path = copy / mutation.module
        text = path.read_text()
        count = text.count(mutation.old)
        if count != 1:
            raise AssertionError(
                f"{mutation.mistake!r}: its text occurs {count} times in {mutation.module}; "
                "update the mutation to the source."
            )
        path.write_text(text.replace(mutation.old, mutation.new))
    return copy


def import_copy(folder: Path, name: str) -> ModuleType:
    """Import the package in ``folder`` as ``name``, and all its modules as attributes."""
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    for module in sorted(folder.glob("*.py")):
        if module.stem != "__init__":
            importlib.import_module(f"{name}.{module.stem}")
    return package


def check_lines(notebook: Path) -> dict[str, list[str]]:
    """The lines of each graded cell that call ``checks.check_...`` (visible and hidden)."""
    return {
        cell.metadata["nbgrader"]["grade_id"]: [
            line for line in cell.source.splitlines() if line.startswith("checks.")
        ]
        for cell in nbformat.read(notebook, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    }


def graded_check_calls(
    notebook: Path, grade_ids: list[str], names: Callable[[ModuleType], dict]
) -> Checks:
    """The check calls of the graded cells ``grade_ids`` as functions of the imported package;
    ``names(package)`` gives the names the calls use."""
    lines = check_lines(notebook)

    def run(calls: list[str]) -> Callable[[ModuleType], None]:
        def run_calls(package: ModuleType) -> None:
            for call in calls:
                exec(call, names(package))

        return run_calls

    return {grade_id: run(lines[grade_id]) for grade_id in grade_ids}


def failures_of(
    package: Path, mutation: Mutation | None, checks: Checks, work: Path, name: str
) -> dict[str, str]:
    """Run every public check on a copy of ``package`` with ``mutation`` planted.

    Returns {check name: "ErrorType: message"} for the checks that failed.
    """
    imported = import_copy(plant(package, mutation, work), name)
    failures = {}
    try:
        for check, call in checks.items():
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    call(imported)
            except Exception as error:
                failures[check] = f"{type(error).__name__}: {error}"
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]
    return failures


def assert_covers(mutations: list[Mutation], checks: Checks, notebook: Path) -> None:
    """At least 10 mistakes; every graded cell catches one; each has visible and hidden calls."""
    assert len(mutations) >= 10
    assert {mutation.check for mutation in mutations} == set(checks)
    lines = check_lines(notebook)
    assert all(len(lines[grade_id]) >= 2 for grade_id in checks), "visible and hidden calls"


def assert_names_the_cause(mutation: Mutation, message: str) -> None:
    """The failure is a check's AssertionError whose message holds every fragment."""
    assert message.startswith("AssertionError: "), message
    for fragment in mutation.says:
        assert fragment in message, message


def print_table(package: Path, mutations: list[Mutation], checks: Checks, work: Path) -> None:
    """The mutation table (mistake -> failing checks and their messages), for people to read."""
    for number, mutation in enumerate(mutations):
        failed = failures_of(package, mutation, checks, work / str(number), f"mutant_{number}")
        print(f"- {mutation.mistake}")
        for check, message in failed.items():
            print(f"    {check}: {message}")
        if not failed:
            print("    NOT CAUGHT")
