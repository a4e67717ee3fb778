"""Where the repository is: the one definition of :data:`REPO_ROOT`."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the folder that holds ``exercise_08/`` and ``autograder/``)."""

PACKAGE_DIR = REPO_ROOT / "autograder"
"""The ``autograder`` package itself (never covered in a sandbox: its launcher runs there)."""
