"""Imports point down the layers of DESIGN.md ("Inside autograder/"): a module may import its
own layer's modules and those of the layers below, never one above.

    cli                                         5
    workflow commands (grade, report, ...), service   4
    engine                                      3
    grading (one submission -> record)          2
    sandbox, store, the course folder's layout  1
    core                                        0

The service may also use the workflow's ``collect`` (the same checks and sentences for an upload
as for a collected zip), ``lms`` and ``course``; nothing else crosses between the groups of one
rank.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"

BASE_MODULES = {"course", "files", "exercise_modules", "data"}
"""The course folder's layout and the instructor data's readers (rank 1)."""
SUBPACKAGES = {"core": 0, "sandbox": 1, "store": 1, "grading": 2, "engine": 3, "service": 4}
CROSSINGS = {("service", "workflow")}


def group(module: str) -> tuple[str, int]:
    """``(group, rank)`` of ``autograder.<...>``."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top in SUBPACKAGES:
        return top, SUBPACKAGES[top]
    if top in BASE_MODULES:
        return "base", 1
    if top in ("cli", "__main__", "__init__"):
        return "cli", 5
    return "workflow", 4


def imports(path: Path) -> set[str]:
    """The ``autograder`` modules ``path`` imports (relative imports resolved)."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None and node.level:
                found |= {f"{target}.{alias.name}" for alias in node.names}
            elif target.startswith("autograder"):
                found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("autograder")}
    return found


def upward_imports() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source_group, source_rank = group(module)
        for target in sorted(imports(path)):
            target_group, target_rank = group(target)
            if target_group == source_group or target_rank < source_rank:
                continue
            if (source_group, target_group) in CROSSINGS:
                continue
            wrong.append(f"{module} ({source_group}) imports {target} ({target_group})")
    return wrong


def test_imports_point_down_the_layers():
    assert upward_imports() == []


def test_the_check_sees_an_import_that_points_up(tmp_path, monkeypatch):
    """The check itself: an import of the engine from core is reported."""
    fake = tmp_path / "autograder"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "records.py").write_text("from ..engine import grading_client\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert upward_imports() == ["autograder.core.records (core) imports autograder.engine (engine)"]


def test_the_web_service_never_imports_grading_or_the_sandbox():
    service = PACKAGE / "service"
    for path in service.rglob("*.py"):
        for target in imports(path):
            assert not target.startswith(("autograder.grading", "autograder.sandbox")), path
