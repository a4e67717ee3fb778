"""The feedback page of an upload: :func:`feedback_page`.

The grading engine writes the cleaned feedback notebooks of a grading row into
``gradings/<row>/feedback/`` (hidden tests left out, the student's markup escaped, each graded
part's verdict under its cell). This renders them as one HTML page with nbconvert's ``basic``
template (no execution: nbconvert only formats what is there), cleaned by bleach (:data:`TAGS`,
images only as data, links only https), inside
``templates/feedback.html``, once per grading row and variant (cached in the notebooks' folder,
which a new grading of the row replaces whole). Before the deadline, the hidden check's
sentence (it states the accuracy on the graded part of the hidden set) is replaced by the one
the API shows (:func:`~.views.redacted`). The route serves it with a Content-Security-Policy
that allows no script at all (:data:`FEEDBACK_HEADERS`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import bleach
import nbformat
from markupsafe import Markup
from nbconvert import HTMLExporter

from ..files import atomic_write
from .views import replaced

logger = logging.getLogger(__name__)

TAGS = {
    *"a abbr b blockquote br caption code dd del details div dl dt em hr i img li ol p pre".split(),
    *"span strong sub summary sup table tbody td th thead tr ul h1 h2 h3 h4 h5 h6".split(),
}
"""What the page keeps of the HTML nbconvert writes (bleach; any other tag shows as text)."""
MAX_NOTEBOOK_BYTES = 16 * 2**20
"""A feedback notebook larger than this is not rendered (the grader keeps them far smaller)."""
FEEDBACK_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src data:; sandbox; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}
"""The feedback page holds student text: no script runs in it, whatever it contains."""


def _replaced(value, replacements: dict[str, str]):
    """``value`` (JSON) with every text in ``replacements`` replaced, in every string."""
    if isinstance(value, str):
        return replaced(value, replacements)
    if isinstance(value, list):
        return [_replaced(item, replacements) for item in value]
    if isinstance(value, dict):
        return {key: _replaced(item, replacements) for key, item in value.items()}
    return value


def notebook_html(path: Path, replacements: dict[str, str]) -> str | None:
    """The body of one feedback notebook as sanitized HTML; None when it cannot be shown."""
    try:
        if path.is_symlink() or path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return None
        notebook = _replaced(json.loads(path.read_text(encoding="utf-8")), replacements)
        body, _ = HTMLExporter(template_name="basic").from_notebook_node(
            nbformat.from_dict(notebook)
        )
    except Exception as error:  # a notebook nbconvert cannot read: the page says so
        logger.warning("feedback %s not rendered: %r", path, error)
        return None
    return bleach.clean(
        body, tags=TAGS, attributes=_allowed_attribute, protocols=["http", "https", "data"]
    )


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if name in ("class", "id"):
        return True
    if tag == "img":
        return name == "alt" or (name == "src" and value.startswith("data:image/"))
    if tag == "a":
        return name == "title" or (name == "href" and value.startswith(("https://", "#")))
    return tag in ("td", "th") and name in ("colspan", "rowspan")


def feedback_page(
    templates, folder: Path, title: str, replacements: dict[str, str], cache: Path
) -> str | None:
    """The page of the feedback notebooks in ``folder`` (None when there are none), rendered
    once into ``cache`` (a final row's feedback never changes; ``cache`` names the variant)."""
    if not folder.is_dir() or folder.is_symlink():
        return None
    with contextlib.suppress(OSError):
        return cache.read_text(encoding="utf-8")
    page = _render(templates, folder, title, replacements)
    if page is not None:
        atomic_write(cache, page.encode("utf-8"))
    return page


def _render(templates, folder: Path, title: str, replacements: dict[str, str]) -> str | None:
    paths = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if not paths:
        return None
    notebooks = []
    for path in paths:
        body = notebook_html(path, replacements)
        notebooks.append({"name": path.stem, "body": Markup(body) if body is not None else None})
    template = templates.get_template("feedback.html")
    return template.render(title=title, notebooks=notebooks)
