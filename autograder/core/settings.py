"""The grader's limits and places: :class:`GradeSettings`, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import AutograderError
from .paths import REPO_ROOT

MiB = 2**20

CELL_TIMEOUT_S = 300
"""nbgrader's per-cell execution timeout when autograding (the notebooks do not train then)."""


@dataclass(frozen=True)
class GradeSettings:
    """Limits and places of grading; :meth:`from_env` reads overrides. Picklable: every task of
    the engine carries it to its worker.

    Environment variables (all optional): ``AUTOGRADER_TIMEOUT_S`` (wall clock of one
    autograde), ``AUTOGRADER_CELL_TIMEOUT_S`` (one notebook cell), ``AUTOGRADER_MEMORY_MB``
    (memory of all processes of one autograde together), ``AUTOGRADER_DISK_MB`` (what one
    autograde may write), ``AUTOGRADER_PROCESSES`` (processes and threads of one job),
    ``AUTOGRADER_PROBE_TIMEOUT_S`` and ``AUTOGRADER_PROBE_MEMORY_MB`` (one trusted check or
    model run), ``AUTOGRADER_MODEL_TIMEOUT_S`` (the handed-in model on the hidden and public
    images), ``AUTOGRADER_GRADER_MEMORY_MB`` (the grading worker's own process: reading and
    judging what sandboxes hand back; over it, Dask's nanny stops the worker),
    ``AUTOGRADER_TRIES`` (how often a submission may take its worker down before it ends as an
    ``error`` row), ``AUTOGRADER_PUBLIC_FRACTION`` (the part of the hidden test set whose
    accuracy a student sees before the deadline as ``public_accuracy``; the hidden points use
    the rest; default 0.3), ``AUTOGRADER_CHECK_LANES`` (how many sandboxes of one submission's
    trusted checks run at once beside its notebook; default 2), ``AUTOGRADER_DATA_DIR`` (the
    data folder with the hidden test set and the course key; default ``data/`` of the
    repository).
    """

    autograde_timeout_s: float = 900.0
    cell_timeout_s: int = CELL_TIMEOUT_S
    autograde_memory_bytes: int = 4096 * MiB
    autograde_disk_bytes: int = 2048 * MiB
    max_processes: int = 256
    probe_timeout_s: float = 120.0
    probe_memory_bytes: int = 2048 * MiB
    model_timeout_s: float = 120.0
    grader_memory_bytes: int = 6144 * MiB
    tries: int = 2
    public_fraction: float = 0.3
    check_lanes: int = 2
    data_dir: Path = field(default_factory=lambda: REPO_ROOT / "data")

    @classmethod
    def from_env(cls) -> GradeSettings:
        env = os.environ
        settings = cls()
        numbers = {
            "autograde_timeout_s": ("AUTOGRADER_TIMEOUT_S", float, 1),
            "cell_timeout_s": ("AUTOGRADER_CELL_TIMEOUT_S", int, 1),
            "autograde_memory_bytes": ("AUTOGRADER_MEMORY_MB", int, MiB),
            "autograde_disk_bytes": ("AUTOGRADER_DISK_MB", int, MiB),
            "max_processes": ("AUTOGRADER_PROCESSES", int, 1),
            "probe_timeout_s": ("AUTOGRADER_PROBE_TIMEOUT_S", float, 1),
            "probe_memory_bytes": ("AUTOGRADER_PROBE_MEMORY_MB", int, MiB),
            "model_timeout_s": ("AUTOGRADER_MODEL_TIMEOUT_S", float, 1),
            "grader_memory_bytes": ("AUTOGRADER_GRADER_MEMORY_MB", int, MiB),
            "tries": ("AUTOGRADER_TRIES", int, 1),
            "public_fraction": ("AUTOGRADER_PUBLIC_FRACTION", float, 1),
            "check_lanes": ("AUTOGRADER_CHECK_LANES", int, 1),
        }
        for name, (variable, kind, scale) in numbers.items():
            if env.get(variable):
                try:
                    value = kind(float(env[variable]) * scale)
                except ValueError:
                    raise AutograderError(
                        f"{variable} must be a number, not {env[variable]!r}."
                    ) from None
                settings = replace(settings, **{name: value})
        if settings.tries < 1:
            raise AutograderError("AUTOGRADER_TRIES must be at least 1.")
        if settings.check_lanes < 1:
            raise AutograderError("AUTOGRADER_CHECK_LANES must be at least 1.")
        if not 0 <= settings.public_fraction < 1:
            raise AutograderError("AUTOGRADER_PUBLIC_FRACTION must be at least 0 and below 1.")
        if env.get("AUTOGRADER_DATA_DIR"):
            settings = replace(settings, data_dir=Path(env["AUTOGRADER_DATA_DIR"]))
        return settings
