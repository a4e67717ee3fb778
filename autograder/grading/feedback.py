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
- removes control characters and terminal escape codes from every text;
- bounds the page: every source and output is cut to :data:`MAX_ITEM_BYTES` and the whole
  notebook to :data:`MAX_PAGE_BYTES`, both measured AFTER HTML escaping (a cell printing 40 MB
  of ``&`` would become 200 MB of ``&amp;``), with a note saying how much was cut;
- names every graded cell (from its "# Test (6 points): Encoder." line) in its verdict and in a
  table of the parts at the top of the notebook (nbgrader's own list says only "Test cell");
- says under each cell the feedback run skipped (:mod:`.feedback_cells`) that it did not run;
- writes LaTeX formulas in markdown as Unicode text (``$\\mu_B$`` becomes ``μ_B``), so the page
  reads the same offline and needs no MathJax from a CDN.

:func:`kept_feedback` is the entry point of the grading engine: it reads the autograded notebooks
with the bounded reader of :mod:`.sandbox.untrusted` and returns the cleaned ones plus a sentence
for each notebook too large for feedback.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.text import clean_text
from ..course import HIDDEN_BEGIN, HIDDEN_END
from ..sandbox import untrusted
from .feedback_cells import SKIP_TAG

PLACEHOLDER = "# [hidden tests: not shown; the grader's verdict is under this cell]"
SAFE_DATA = ("text/plain", "image/png", "image/jpeg")
_SCHEMES = re.compile(r"(?i)\b(javascript|vbscript|data)\s*:")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MAX_NOTEBOOK_BYTES = 50 * 2**20
"""An autograded notebook larger than this gets no feedback page (its points stand)."""
MAX_ITEM_BYTES = 200_000
"""One cell's source or one output, as HTML-escaped UTF-8, at most this long."""
MAX_PAGE_BYTES = 4 * 2**20
"""All sources and outputs of a notebook together, HTML-escaped, at most this long."""
_TEST_LINE = re.compile(
    r"#\s*(?P<kind>[^(\n]*?)\s*\((?P<points>[\d.]+) points?\):\s*(?P<rest>[^\n]*)"
)
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)


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


# ----------------------------------------------------------------------------- page size


def html_bytes(text: str) -> int:
    """How many bytes ``text`` takes in the page: HTML-escaped (``&`` becomes ``&amp;``...),
    as UTF-8; counted without building the escaped text."""
    grown = sum(text.count(c) * (len(html.escape(c)) - 1) for c in "&<>\"'")
    if text.isascii():
        return len(text) + grown
    chunks = range(0, len(text), 2**20)  # a megabyte at a time: no copy of a flood
    return sum(len(text[i : i + 2**20].encode("utf-8", "replace")) for i in chunks) + grown


@dataclass(frozen=True)
class Dropped:
    """What was cut from a text before cleaning: characters, and bytes as HTML."""

    chars: int = 0
    html_bytes: int = 0


def _raw(value: object) -> tuple[str, Dropped]:
    """Text of an output or source cut to what a page item could ever show (escaping never
    shortens), before any cleaning copies it; and what that cut."""
    text = _text(value)
    kept = text[: 2 * MAX_ITEM_BYTES]
    if len(kept) == len(text):
        return text, Dropped()
    return kept, Dropped(len(text) - len(kept), html_bytes(text) - html_bytes(kept))


@dataclass
class Budget:
    """What is left of the page for sources and outputs (HTML-escaped bytes), and what was cut."""

    left: int = MAX_PAGE_BYTES
    cut_bytes: int = 0

    def take(self, text: str, dropped: Dropped = Dropped()) -> str:
        """``text``, or as much of it as fits one item and what is left of the page, followed
        by a note of how much was cut (``dropped``: what was cut before cleaning); what is kept
        counts against the page."""
        size = html_bytes(text)
        limit = min(MAX_ITEM_BYTES, self.left)
        if size <= limit and not dropped.chars:
            self.left -= size
            return text
        kept = _prefix_within(text, max(limit - 200, 0))
        self.cut_bytes += size - html_bytes(kept) + dropped.html_bytes
        note = (
            f"\n[... cut for the feedback page: {len(text) - len(kept) + dropped.chars:,} more "
            f"characters not shown]\n"
        )
        self.left = max(self.left - html_bytes(kept) - html_bytes(note), 0)
        return kept + note


def _prefix_within(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose :func:`html_bytes` is at most ``limit``."""
    text = text[:limit]  # escaping never shortens, so no longer prefix can fit
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if html_bytes(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


# ----------------------------------------------------------------------------- outputs


def _safe_output(output: dict, graded: bool, budget: Budget) -> dict | None:
    kind = output.get("output_type")
    if kind == "stream":
        text, dropped = _raw(output.get("text"))
        return {
            "output_type": "stream",
            "name": str(output.get("name", "stdout"))[:10],
            "text": budget.take(clean_block(text), dropped),
        }
    if kind == "error":
        name = budget.take(clean_text(output.get("ename"), 200))
        value = budget.take(clean_text(output.get("evalue"), 2000))
        lines = (
            [f"{name}: {value}"]
            if graded
            else [budget.take(clean_block(_text(t))) for t in output.get("traceback", [])[:200]]
        )
        return {"output_type": "error", "ename": name, "evalue": value, "traceback": lines}
    if kind in ("display_data", "execute_result"):
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        kept = {}
        for key in SAFE_DATA:
            if key not in data:
                continue
            value = _text(data[key])
            if key == "text/plain":
                kept[key] = budget.take(clean_block(value[: 2 * MAX_ITEM_BYTES]))
            elif html_bytes(value) <= min(MAX_ITEM_BYTES * 10, budget.left):
                budget.left -= html_bytes(value)
                kept[key] = value
            else:
                budget.cut_bytes += len(value)
                kept["text/plain"] = f"[an image of {len(value) / 2**20:.1f} MB, cut for the page]"
        if not kept:
            return None
        cleaned = {"output_type": kind, "data": kept, "metadata": {}}
        if kind == "execute_result":
            cleaned["execution_count"] = output.get("execution_count")
        return cleaned
    return None


# ----------------------------------------------------------------------------- names, LaTeX


def cell_name(source: str, heading: str, grade_id: str) -> str:
    """A graded cell's name for students: "Encoder" from its first line "# Test (6 points):
    Encoder. Checks ...", "Hidden test" from "# Hidden test (50 points): ...", else the
    markdown heading above it, else its grade id."""
    match = _TEST_LINE.match(source.lstrip())
    if match:
        kind, rest = match.group("kind").strip(), match.group("rest").strip()
        name = re.split(r"\.(?:\s|$)", rest)[0] if kind.lower() == "test" else kind
        if name:
            return clean_text(name[:1].upper() + name[1:], 80)
    return clean_text(heading, 80) or grade_id


_LATEX_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "nu": "ν", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "phi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Delta": "Δ", "Sigma": "Σ", "Omega": "Ω", "Gamma": "Γ", "Lambda": "Λ", "Phi": "Φ",
    "sum": "∑", "prod": "∏", "int": "∫", "partial": "∂", "nabla": "∇", "infty": "∞",
    "leftarrow": "←", "rightarrow": "→", "to": "→", "gets": "←", "Rightarrow": "⇒",
    "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "approx": "≈", "sim": "∼",
    "cdot": "·", "times": "×", "odot": "⊙", "circ": "∘", "pm": "±", "in": "∈",
    "sqrt": "√", "ldots": "…", "dots": "…", "cdots": "⋯", "mathbb": "", "mathbf": "",
    "mathrm": "", "text": "", "operatorname": "", "left": "", "right": "", "quad": " ", "ln": "ln",
    "qquad": "  ", "hat": "^", "bar": "‾", "tilde": "~", "top": "ᵀ", "log": "log",
    "exp": "exp", "max": "max", "min": "min", "lVert": "‖", "rVert": "‖", "|": "‖",
    "{": "{", "}": "}", ",": " ", ";": " ", "!": "",
}  # fmt: skip
"""LaTeX commands of the lecture's formulas and the Unicode that reads like them."""
_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", re.DOTALL)
_COMMAND = re.compile(r"\\([A-Za-z]+|[|{},;!])")
_FRACTION = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")
_ACCENT = re.compile(r"\\(hat|bar|tilde)\s*\{?([A-Za-z])\}?")
_ACCENTS = {"hat": "\u0302", "bar": "\u0304", "tilde": "\u0303"}


def latex_as_text(math: str) -> str:
    """A formula as plain Unicode text: Greek letters and operators as symbols, fractions as
    ``(a)/(b)``, accents as combining marks, grouping braces dropped (readable without a math
    renderer)."""
    text = _FRACTION.sub(r"(\1)/(\2)", " ".join(math.split()))
    text = _ACCENT.sub(lambda m: m.group(2) + _ACCENTS[m.group(1)], text)
    text = _COMMAND.sub(lambda m: _LATEX_SYMBOLS.get(m.group(1), m.group(1)), text)
    return re.sub(r"(?<![_^]){([^{}]*)}", r"\1", text).replace("\\\\", " ").strip()


def markdown_without_latex(source: str) -> str:
    """Markdown with every ``$...$`` and ``$$...$$`` formula written as Unicode text."""

    def replace(match: re.Match) -> str:
        if match.group(1) is not None:
            return f"\n\n    {latex_as_text(match.group(1))}\n\n"
        return f"`{latex_as_text(match.group(2)).replace('`', '')}`"

    return _MATH.sub(replace, source)


# ----------------------------------------------------------------------------- the notebook


def _verdict(value: object) -> tuple[float, float, str]:
    """``(score, max_score, message)`` from a triple or a record with those attributes."""
    if isinstance(value, tuple):
        return float(value[0]), float(value[1]), str(value[2] or "")
    return float(value.score), float(value.max_score), str(value.message or "")


def _summary_cell(parts: list[tuple[str, str, tuple[float, float, str]]]) -> dict:
    """A markdown cell at the top: each graded part by name, its points and why any were lost."""
    rows = ["## Your points, part by part", "", "| Part | Points | Why points were lost |"]
    rows.append("|---|---|---|")
    for name, grade_id, (score, maximum, message) in parts:
        why = safe_markdown(clean_text(message, 500)).replace("|", "\\|") if message else ""
        rows.append(
            f"| {safe_markdown(name).replace('|', '/')} (`{grade_id}`) | "
            f"{score:g} of {maximum:g} | {why} |"
        )
    total = sum(v[0] for _, _, v in parts), sum(v[1] for _, _, v in parts)
    rows += ["", f"In all: **{total[0]:g} of {total[1]:g} points**. Each part's verdict is also "]
    rows[-1] += "under its cell below."
    return {
        "cell_type": "markdown",
        "metadata": {"autograder": {"summary": True}},
        "source": "\n".join(rows) + "\n",
        "id": "autograder-points-summary",
    }


def feedback_notebook(notebook: dict, verdicts: Mapping[str, object]) -> dict:
    """A cleaned copy of an autograded notebook (see the module docstring).

    ``verdicts`` maps a graded cell's ``grade_id`` to ``(score, max_score, message)`` (or to a
    record with those attributes); the hidden cell's message carries the hidden accuracy.
    """
    budget, cells, parts, heading = Budget(), [], [], ""
    for cell in notebook.get("cells", []):
        if not isinstance(cell, dict):
            continue
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        meta = metadata.get("nbgrader") if isinstance(metadata.get("nbgrader"), dict) else {}
        grade_id = str(meta.get("grade_id", ""))
        graded = bool(meta.get("grade")) and grade_id in verdicts
        source, dropped = _raw(cell.get("source"))
        if cell.get("cell_type") == "markdown":
            found = _HEADING.findall(source[:10_000])
            heading = found[-1] if found else heading
            markdown = markdown_without_latex(budget.take(clean_block(source), dropped))
            cleaned = {**cell, "source": safe_markdown(markdown)}
            cleaned.pop("attachments", None)
        elif cell.get("cell_type") == "code":
            outputs = [
                _safe_output(o, graded, budget)
                for o in cell.get("outputs", [])[:1000]
                if isinstance(o, dict)
            ]
            outputs = [o for o in outputs if o is not None]
            tags = metadata.get("tags") if isinstance(metadata.get("tags"), list) else []
            skipped = SKIP_TAG in tags
            if skipped:
                outputs = [_not_run_output()]
            if graded:
                verdict = _verdict(verdicts[grade_id])
                name = cell_name(source, heading, grade_id)
                parts.append((name, grade_id, verdict))
                outputs.append(_verdict_output(name, verdict))
            cleaned = {
                **cell,
                "source": budget.take(strip_hidden_tests(clean_block(source)), dropped),
                "outputs": outputs,
            }
            if graded:
                cleaned["metadata"] = {**metadata, "autograder": {"name": name}}
            if skipped:  # the times of the student's own run are no times of this one
                cleaned["metadata"] = {k: v for k, v in metadata.items() if k != "execution"}
                cleaned["execution_count"] = None
        else:
            cleaned = {**cell, "source": safe_markdown(budget.take(source, dropped))}
        cells.append(cleaned)
    if budget.cut_bytes:
        cells.insert(0, _cut_note(budget.cut_bytes))
    if parts:
        cells.insert(0, _summary_cell(parts))
    return {**notebook, "cells": cells}


def _verdict_output(name: str, verdict: tuple[float, float, str]) -> dict:
    score, maximum, message = verdict
    text = f"Grader's verdict: {score:g} of {maximum:g} points for {name}. {clean_text(message)}"
    return {"output_type": "stream", "name": "stdout", "text": text.rstrip() + "\n"}


def _not_run_output() -> dict:
    text = (
        "(Not run for this feedback: no graded cell needs it. Its output from your own run is "
        "in your notebook.)\n"
    )
    return {"output_type": "stream", "name": "stdout", "text": text}


def _cut_note(cut_bytes: int) -> dict:
    return {
        "cell_type": "markdown",
        "metadata": {"autograder": {"cut": cut_bytes}},
        "source": (
            f"*This feedback page leaves out {cut_bytes / 2**20:.1f} MB of outputs (as HTML) "
            "that were too long to show; each cut is marked where it happened. Your points do "
            "not depend on it.*\n"
        ),
        "id": "autograder-cut-note",
    }


# ----------------------------------------------------------------------------- entry point

TEMPLATES = Path(__file__).resolve().parent / "templates"
"""Our ``feedback`` template: nbgrader's feedback page naming each graded cell, without MathJax.
It has nbgrader's template's name on purpose: nbgrader's API insists on the name ``feedback``,
and this folder comes first among the template folders, so it is the one found."""


def exporter_config() -> dict[str, object]:
    """nbgrader/nbconvert settings that render the feedback page with :data:`TEMPLATES`'
    ``feedback`` (pass them to nbgrader's API next to ``HTMLExporter.sanitize_html``)."""
    import nbgrader

    nbgrader_templates = Path(nbgrader.__file__).parent / "server_extensions/formgrader/templates"
    return {
        "HTMLExporter.template_name": "feedback",
        "HTMLExporter.extra_template_basedirs": [str(TEMPLATES), str(nbgrader_templates)],
    }


@dataclass
class KeptFeedback:
    """What :func:`kept_feedback` returns: the cleaned notebooks by name, and one sentence for
    the notebooks that got no feedback ("" when all did)."""

    notebooks: dict[str, dict] = field(default_factory=dict)
    note: str = ""


def kept_feedback(
    autograded: Path,
    notebooks: Sequence[str],
    verdicts: Mapping[str, object],
    max_bytes: int = MAX_NOTEBOOK_BYTES,
) -> KeptFeedback:
    """The feedback notebooks of one submission; never raises.

    Reads ``autograded/<name>.ipynb`` for each name in ``notebooks`` with the bounded reader
    (no link followed, at most ``max_bytes``, JSON depth and items bounded) and cleans it with
    :func:`feedback_notebook`. A notebook that is too large, unreadable or not a notebook is
    left out, and ``note`` says so in one sentence ("... too large for feedback (62.0 MB); the
    points stand."), for the row's message.
    """
    kept, problems = KeptFeedback(), []
    for name in notebooks:
        relative = f"{name}.ipynb"
        size = untrusted.file_size(autograded, relative)
        if size is None:
            continue  # never executed (the row says why); nothing to show
        if size > max_bytes:
            problems.append(
                f"your notebook {relative} was too large for feedback ({size / 2**20:.1f} MB, "
                f"more than {max_bytes / 2**20:.0f} MB)"
            )
            continue
        try:
            data = untrusted.load_json(autograded, relative, max_bytes)
            if not isinstance(data.get("cells"), list):
                raise untrusted.UnusableData("it has no list of cells")
            kept.notebooks[name] = feedback_notebook(data, verdicts)
        except Exception as error:  # the points never depend on the feedback
            problems.append(f"your notebook {relative} could not be shown as feedback ({error})")
    if problems:
        kept.note = clean_text(
            f"{'; '.join(problems)}; the points stand, print less in your cells next time.", 600
        )
        kept.note = kept.note[:1].upper() + kept.note[1:]
    return kept
