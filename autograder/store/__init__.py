"""The grader's database, the source of truth of grading (SQLAlchemy 2, schema by Alembic).

- :mod:`.models`: the tables;
- :mod:`.store`: :class:`Store`, the one facade every other part uses (enqueue, claim, finish,
  the current records of a course);
- ``migrations/``: the schema's versions (Alembic), applied when a store is opened.

By default a course's database is ``course/grading.sqlite`` (SQLite in WAL mode); any SQLAlchemy
URL works (``postgresql+psycopg://...`` for a cluster). Imports only :mod:`autograder.core`.
"""

from .store import GradingRow, Store, default_url

__all__ = ["GradingRow", "Store", "default_url"]
