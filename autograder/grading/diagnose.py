"""What nbgrader's throwaway autograde of a notebook says, read as data only.

The autograde runs for the feedback (the executed notebook); points come from the trusted
checks. Two things are taken from it here, both for wording and flags, never for points:

- :func:`autograde_problem`: why the notebook could not be run to its end, in one sentence;
- :func:`notebook_results`: which graded cells passed in the notebook itself (no error and no
  stderr output, nbgrader's rule), to flag rows where they passed while the same public check,
  run by the cell's probe on the handed-in code, failed (or the probe's data was poisoned): a
  hidden check catching what the lenient public one let through is no flag.
"""

from __future__ import annotations

from pathlib import Path

from ..sandbox import Outcome, untrusted

MAX_NOTEBOOK_BYTES = 50 * 2**20


def load_notebook(folder: Path, name: str) -> dict | None:
    """``folder/name`` as a notebook dict, or None (missing, a link, too big, not JSON)."""
    notebook = untrusted.read_json(folder, name, MAX_NOTEBOOK_BYTES)
    return notebook if notebook is not None and isinstance(notebook.get("cells"), list) else None


def _failed(cell: dict) -> bool:
    for output in cell.get("outputs", []):
        if not isinstance(output, dict):
            continue
        if output.get("output_type") == "error":
            return True
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return True
    return False


def notebook_results(autograded: Path, notebooks: list[str], grade_ids: set[str]) -> set[str]:
    """The graded cells (of ``grade_ids``) that passed in the autograded notebooks."""
    passed = set()
    for name in notebooks:
        notebook = load_notebook(autograded, f"{name}.ipynb") or {"cells": []}
        for cell in notebook["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
            grade_id = str(meta.get("grade_id")) if isinstance(meta, dict) else ""
            if isinstance(meta, dict) and meta.get("grade") and grade_id in grade_ids:
                if cell.get("execution_count") is not None and not _failed(cell):
                    passed.add(grade_id)
    return passed


def autograde_problem(
    outcome: Outcome, submitted: Path, notebooks: list[str], settings
) -> tuple[str, str] | None:
    """``(status, sentence)`` when the notebook could not be run to its end, else None.

    ``status`` is ``error`` or ``timeout``; the points still come from the trusted checks.
    """
    missing = [f"{n}.ipynb" for n in notebooks if not (Path(submitted) / f"{n}.ipynb").is_file()]
    if missing:
        found = sorted(p.name for p in Path(submitted).glob("*.ipynb"))
        seen = f" (found {', '.join(found)})" if found else ""
        return (
            "error",
            f"Your submission has no {', '.join(missing)}{seen}: keep the notebook's original "
            "name, create the zip again with create_submission() and hand it in again.",
        )
    for name in notebooks:
        if load_notebook(Path(submitted), f"{name}.ipynb") is None:
            return (
                "error",
                f"{name}.ipynb in your submission is not a valid notebook (not readable JSON): "
                "save it from Jupyter again, create the zip again and hand it in again.",
            )
    if outcome.over_disk_quota:
        return (
            "error",
            f"Your notebook wrote {outcome.over_disk_quota} while it ran for the feedback and was "
            "stopped: save no large or numerous files when NBGRADER_EXECUTION is set.",
        )
    if outcome.timed_out or (outcome.returncode != 0 and "CellTimeoutError" in outcome.log):
        limit = settings.autograde_timeout_s if outcome.timed_out else settings.cell_timeout_s
        what = "Running your notebook" if outcome.timed_out else "A cell of your notebook"
        return (
            "timeout",
            f"{what} took longer than {limit:g} s and was stopped: make sure the notebook skips "
            "training under autograding (NBGRADER_EXECUTION is set) and has no endless loop.",
        )
    if outcome.over_memory:
        return (
            "error",
            f"Your notebook needed more than {settings.autograde_memory_bytes // 2**20:,} MB of "
            "memory (all its processes together) and was stopped: use less memory.",
        )
    if outcome.over_processes:
        return (
            "error",
            f"Your notebook started more than {settings.max_processes} processes or threads and "
            "was stopped: do not start processes in a loop.",
        )
    if outcome.returncode == 0:
        return None
    if "DeadKernelError" in outcome.log or "kernel died" in outcome.log.lower():
        return (
            "error",
            "The notebook's kernel died while it ran (it may exit on purpose or use too much "
            "memory): run it top to bottom in a fresh kernel and fix what stops it.",
        )
    return (
        "error",
        "nbgrader could not run your notebook to its end: run it top to bottom in a fresh kernel, "
        "fix the error and hand it in again.",
    )
