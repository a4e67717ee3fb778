"""The autograded notebook as students see it in their feedback: safe to open, hidden tests hidden.

nbgrader's autograde restores every locked cell from the source version, hidden tests included,
and its feedback page renders student markdown and HTML outputs as they are. Before the notebook
is kept for feedback (``course/autograded/<student>/<assignment>/``), :func:`feedback_notebook`

- replaces each hidden-test region's source by a placeholder line, and a graded cell's error
  traceback (which would quote the failing hidden line) by its one-line error;
- adds the trusted verdict under each graded cell ("Grader's verdict: 4 of 6 points. ...");
- neutralizes student markup: raw HTML in markdown is shown as text, ``javascript:``/``data:``/
  ``vbscript:`` links are cut, and outputs keep only plain text, PNG/JPEG images and errors
  (no HTML, JavaScript, SVG or widget views);
- removes control characters and terminal escape codes from every text.
"""

from __future__ import annotations

import re

from .course import HIDDEN_BEGIN, HIDDEN_END
from .results import clean_text

PLACEHOLDER = "# [hidden tests: not shown; the grader's verdict is under this cell]"
SAFE_DATA = ("text/plain", "image/png", "image/jpeg")
_SCHEMES = re.compile(r"(?i)\b(javascript|vbscript|data)\s*:")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _text(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def clean_block(text: str) -> str:
    """Multi-line text without terminal escape codes or control characters (newlines kept)."""
    lines = _ANSI.sub("", text).split("\n")
    return "\n".join(clean_text(line, keep_spaces=True) for line in lines)


def strip_hidden_tests(source: str) -> str:
    """``source`` with every hidden-test region replaced by :data:`PLACEHOLDER`."""
    kept, hidden = [], False
    for line in source.splitlines(keepends=True):
        if HIDDEN_BEGIN in line:
            hidden = True
            kept.append(PLACEHOLDER + "\n")
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "".join(kept)


def safe_markdown(source: str) -> str:
    """Markdown whose raw HTML shows as text and whose links cannot run script."""
    escaped = clean_block(source).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SCHEMES.sub(lambda match: f"{match.group(1)}-blocked:", escaped)


def _safe_output(output: dict, graded: bool) -> dict | None:
    kind = output.get("output_type")
    if kind == "stream":
        return {
            "output_type": "stream",
            "name": str(output.get("name", "stdout"))[:10],
            "text": clean_block(_text(output.get("text"))),
        }
    if kind == "error":
        name, value = clean_text(output.get("ename")), clean_text(output.get("evalue"))
        lines = (
            [f"{name}: {value}"]
            if graded
            else [clean_block(_text(t)) for t in output.get("traceback", [])]
        )
        return {"output_type": "error", "ename": name, "evalue": value, "traceback": lines}
    if kind in ("display_data", "execute_result"):
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        kept = {
            k: (clean_block(_text(v)) if k == "text/plain" else _text(v))
            for k, v in data.items()
            if k in SAFE_DATA
        }
        if not kept:
            return None
        cleaned = {"output_type": kind, "data": kept, "metadata": {}}
        if kind == "execute_result":
            cleaned["execution_count"] = output.get("execution_count")
        return cleaned
    return None


def feedback_notebook(notebook: dict, verdicts: dict[str, tuple[float, float, str]]) -> dict:
    """A cleaned copy of an autograded notebook (see the module docstring).

    ``verdicts`` maps a graded cell's ``grade_id`` to ``(score, max_score, message)``.
    """
    cells = []
    for cell in notebook.get("cells", []):
        if not isinstance(cell, dict):
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        meta = meta if isinstance(meta, dict) else {}
        grade_id = str(meta.get("grade_id", ""))
        graded = bool(meta.get("grade")) and grade_id in verdicts
        source = _text(cell.get("source"))
        if cell.get("cell_type") == "markdown":
            cleaned = {**cell, "source": safe_markdown(source)}
            cleaned.pop("attachments", None)
        elif cell.get("cell_type") == "code":
            outputs = [
                _safe_output(o, graded) for o in cell.get("outputs", []) if isinstance(o, dict)
            ]
            outputs = [o for o in outputs if o is not None]
            if graded:
                score, maximum, message = verdicts[grade_id]
                verdict = f"Grader's verdict: {score:g} of {maximum:g} points."
                outputs.append(
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": f"{verdict} {clean_text(message)}".rstrip() + "\n",
                    }
                )
            cleaned = {
                **cell,
                "source": strip_hidden_tests(clean_block(source)),
                "outputs": outputs,
            }
        else:
            cleaned = {**cell, "source": safe_markdown(source)}
        cells.append(cleaned)
    return {**notebook, "cells": cells}
