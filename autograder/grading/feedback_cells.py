"""Which cells the feedback run may skip: the graded cells and what they need run, nothing else.

The notebook runs for the feedback only (points come from the trusted checks). Cells that only
draw plots or train a model for the lesson take most of its time, and no graded cell needs
them. :func:`skippable_cells` reads the *source* notebook (trusted) and keeps, walking from the
last cell to the first:

- every graded, solution or unnamed cell (no ``grade_id``: the student may have changed it);
- every cell that binds a name a kept later cell reads (assigned, imported, defined, or changed
  through ``name[...] =`` / ``name.attr =``).

The rest, named by ``grade_id``, are tagged :data:`SKIP_TAG` in the throwaway copy of the
submitted notebook (:func:`tag_skipped`); nbclient, which runs nbgrader's autograde, does not
execute a tagged cell, and the feedback says so under it. A cell that changes an object in
place by a method call (``history.append(...)``) is not seen as binding it: the feedback may
then differ from the student's own run, the points never do.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

SKIP_TAG = "skip-execution"
"""nbclient's ``NotebookClient.skip_cells_with_tag`` (its default)."""


def _python(source: str) -> ast.Module | None:
    """The cell as Python (IPython magics turned into calls), or None if it does not parse."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None


def names_bound_and_read(tree: ast.Module) -> tuple[set[str], set[str]]:
    """``(bound, read)``: the names a cell binds or changes, and the names it reads."""
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store | ast.Del) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.Subscript | ast.Attribute) and isinstance(node.ctx, ast.Store):
            base = node.value
            while isinstance(base, ast.Subscript | ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name):
                bound.add(base.id)
    return bound, read


def _metadata(cell: dict) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def skippable_cells(notebook: dict) -> frozenset[str]:
    """The ``grade_id`` of every code cell of the source ``notebook`` the feedback run skips."""
    needed: set[str] = set()
    skipped: set[str] = set()
    for cell in reversed(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        meta = _metadata(cell)
        grade_id = meta.get("grade_id")
        source = cell.get("source", "")
        tree = _python("".join(source) if isinstance(source, list) else str(source))
        must_run = tree is None or not grade_id or meta.get("grade") or meta.get("solution")
        bound, read = names_bound_and_read(tree) if tree is not None else (set(), set())
        if must_run or bound & needed:
            needed |= read
        else:
            skipped.add(str(grade_id))
    return frozenset(skipped)


def tag_skipped(notebook: dict, skipped: Iterable[str]) -> dict:
    """``notebook`` (a student's, parsed as data) with :data:`SKIP_TAG` on exactly the cells
    named in ``skipped`` (a tag the student set elsewhere is removed)."""
    skipped = set(skipped)
    for cell in notebook.get("cells", []):
        if not isinstance(cell, dict):
            continue
        metadata = cell.get("metadata")
        if not isinstance(metadata, dict):
            continue
        tags = (
            [t for t in metadata.get("tags", []) if t != SKIP_TAG]
            if isinstance(metadata.get("tags"), list)
            else []
        )
        if cell.get("cell_type") == "code" and str(_metadata(cell).get("grade_id")) in skipped:
            tags.append(SKIP_TAG)
        if tags or "tags" in metadata:
            metadata["tags"] = tags
    return notebook
