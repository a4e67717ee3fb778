"""What went wrong with one autograded submission, said in one sentence the student can act on.

Used by :mod:`autograder.grade`. Everything read here (the submitted and the autograded
notebooks, nbgrader's log) was written by or next to student code, so it is only parsed as
data, size-capped, and used for wording, never for scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import Outcome, read_untrusted_json

MAX_NOTEBOOK_BYTES = 50 * 2**20


@dataclass
class NotebookFindings:
    """What the notebooks show.

    - failures: graded cell id -> its error (``"AssertionError: text"``) in the autograded run.
    - first_error: ``(error, where)`` of the first error in a cell that is not a graded test
      cell, when it came before every failing test cell (the likely cause of those failures).
    - deleted: graded cell ids that are not in the submitted notebook.
    - edited: graded cell ids whose submitted source no longer matches nbgrader's checksum.
    """

    failures: dict[str, str] = field(default_factory=dict)
    first_error: tuple[str, str] | None = None
    deleted: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)


def load_notebook(path: Path) -> dict | None:
    """The notebook at ``path`` as a dict, or None (missing, a link, too big, not JSON)."""
    return read_untrusted_json(path, MAX_NOTEBOOK_BYTES)


def _nbgrader_meta(cell: object) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
    return meta if isinstance(meta, dict) else {}


def _error_text(cell: dict) -> str | None:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if not errors:
        return None
    text = f"{errors[-1].get('ename', 'Error')}: {errors[-1].get('evalue', '')}".strip(": ")
    return " ".join(text.split())[:300]


def _stderr_text(cell: dict) -> str | None:
    """The first line a cell wrote to stderr (nbgrader fails a test cell that writes any)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            first = lines[0] if lines else "(empty)"
            # "/tmp/.../123.py:9: UserWarning: text" -> "UserWarning: text" (no temporary paths)
            named = re.search(r"\b\w*(Warning|Error|Exception)\b:.*", first)
            first = (named.group(0) if named else first)[:200]
            return f"output on stderr, which nbgrader counts as a failed test ({first})"
    return None


def join_sentences(first: str, second: str) -> str:
    """One sentence from two ("" parts are left out): ``first; also second``."""
    if not first or not second:
        return first or second
    return f"{first.rstrip('.')}; also, {second[0].lower()}{second[1:]}"


def _first_line(cell: dict) -> str:
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:60]


def _edited(cell: dict) -> bool:
    from nbformat import from_dict
    from nbgrader.utils import compute_checksum

    expected = _nbgrader_meta(cell).get("checksum")
    source = cell.get("source", "")
    cell = {**cell, "source": "".join(source) if isinstance(source, list) else source}
    try:
        return bool(expected) and compute_checksum(from_dict(cell)) != expected
    except Exception:
        return True


def inspect_notebooks(
    submitted: Path, autograded: Path, notebooks: list[str], grade_ids: set[str]
) -> NotebookFindings:
    """Read the submitted and autograded copies of ``notebooks`` (names without ``.ipynb``)."""
    findings = NotebookFindings()
    for name in notebooks:
        handed_in = load_notebook(submitted / f"{name}.ipynb") or {}
        cells = [c for c in handed_in.get("cells", []) if isinstance(c, dict)]
        present = {str(_nbgrader_meta(c).get("grade_id")) for c in cells}
        findings.deleted += sorted(g for g in grade_ids if g not in present) if cells else []
        findings.edited += [
            str(_nbgrader_meta(c)["grade_id"])
            for c in cells
            if _nbgrader_meta(c).get("grade") and _nbgrader_meta(c).get("locked") and _edited(c)
        ]
        graded = load_notebook(autograded / f"{name}.ipynb") or {}
        earlier_error = None
        for cell in (c for c in graded.get("cells", []) if isinstance(c, dict)):
            meta = _nbgrader_meta(cell)
            is_test = meta.get("grade") and str(meta.get("grade_id")) in grade_ids
            error = _error_text(cell) or (_stderr_text(cell) if is_test else None)
            if error is None:
                continue
            if is_test:
                findings.failures[str(meta["grade_id"])] = error
                if earlier_error and findings.first_error is None:
                    findings.first_error = earlier_error
            elif earlier_error is None and not findings.failures:
                earlier_error = (error, _first_line(cell))
    return findings


def tests_message(details: list[dict], findings: NotebookFindings) -> str:
    """One sentence about the lost test points ("" when none were lost)."""
    lost = [d for d in details if d["score"] < d["max"]]
    if not lost:
        return ""
    points = sum(d["max"] - d["score"] for d in lost)
    cells = "a test cell" if len(lost) == 1 else f"{len(lost)} test cells"
    if findings.deleted:
        return (
            f"Your notebook lacks the graded cell(s) {', '.join(findings.deleted)}, which score 0 "
            "when deleted: download the assignment again, copy your answers into it and hand "
            "it in again."
        )
    if findings.first_error:
        error, where = findings.first_error
        clause = (
            f"your notebook stopped with {error.rstrip('.')} in the cell starting {where!r}, so "
            f"{cells} lost {points:g} points"
        )
    else:
        first = lost[0]
        more = f" (and {len(lost) - 1} more test cells)" if len(lost) > 1 else ""
        clause = (
            f"test cell {first['item'].split(': ', 1)[-1]} lost "
            f"{first['max'] - first['score']:g} points{more} with "
            f"{(first['reason'] or 'no error shown').rstrip('.')}"
        )
    if findings.edited:
        clause = (
            f"your edits to the graded cell(s) {', '.join(findings.edited)} were undone before "
            f"grading, and {clause}"
        )
    return (
        f"{clause[0].upper()}{clause[1:]}: fix that and run the notebook top to bottom before "
        "handing in."
    )


def autograde_problem(
    outcome: Outcome, submitted: Path, notebooks: list[str], timeout_s: float, cell_timeout_s: float
) -> tuple[str, str] | None:
    """``(status, message)`` when nbgrader could not grade the notebooks normally, else None.

    ``outcome`` is what the sandbox reports of ``nbgrader autograde``.
    """
    expected = [f"{name}.ipynb" for name in notebooks]
    missing = [name for name in expected if not (submitted / name).is_file()]
    if missing:
        found = sorted(p.name for p in submitted.glob("*.ipynb"))
        seen = f" (found {', '.join(found)})" if found else ""
        return (
            "error",
            f"Your submission has no {', '.join(missing)}{seen}: keep the notebook's original "
            "name, create the zip again with create_submission() and hand it in again.",
        )
    for name in expected:
        if load_notebook(submitted / name) is None:
            return (
                "error",
                f"{name} in your submission is not a valid notebook file (not readable JSON): "
                "save it from Jupyter again, create the zip again and hand it in again.",
            )
    log = outcome.log
    if outcome.over_disk_quota:
        return (
            "error",
            f"Your notebook wrote {outcome.over_disk_quota} while it was graded and was stopped, "
            "so its tests got no points: save no large or numerous files when NBGRADER_EXECUTION "
            "is set.",
        )
    if outcome.timed_out or (outcome.returncode != 0 and "CellTimeoutError" in log):
        limit = timeout_s if outcome.timed_out else cell_timeout_s
        what = "Grading your notebook" if outcome.timed_out else "A cell of your notebook"
        return (
            "timeout",
            f"{what} took longer than {limit:g} s and was stopped, so its tests got no points: "
            "make sure the notebook skips training under autograding (NBGRADER_EXECUTION is set) "
            "and has no endless loop.",
        )
    if outcome.returncode == 0:
        return None
    if "DeadKernelError" in log or "kernel died" in log.lower():
        return (
            "error",
            "The notebook's kernel died while it was graded (it may use too much memory or exit "
            "on purpose), so its tests got no points: run it top to bottom in a fresh kernel and "
            "fix what stops it.",
        )
    if outcome.returncode < 0 or "MemoryError" in log:
        return (
            "error",
            "Grading your notebook ran out of memory or was killed, so its tests got no points: "
            "make it use less memory (no huge arrays) and hand it in again.",
        )
    lines = [line.strip() for line in log.splitlines() if "Error" in line or "Exception" in line]
    detail = (lines[-1] if lines else "unknown error")[:200]
    return (
        "error",
        f"nbgrader could not grade your notebook ({detail}): run it top to bottom in a fresh "
        "kernel, fix the error and hand it in again.",
    )
