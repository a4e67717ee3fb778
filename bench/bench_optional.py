"""Benchmark of the optional exercise: the notebook's top-to-bottom runtime. Prints its figures
(it is not a test; the budget is 60 s on the course's 2-core machine).

Usage (from the repository root, after the MNIST training files are prepared)::

    python bench/bench_optional.py [--runs 1]

Each run executes the SOURCE notebook (solutions in) with nbclient in a temporary copy of
``exercise_08_optional/``, so the repository stays clean. The time includes starting the kernel.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercise_08_optional"
NOTEBOOK = "regularization.ipynb"
BUDGET_S = 60.0


def run_once() -> tuple[float, list[tuple[float, str]]]:
    """Execute the notebook once; return (total seconds, [(seconds, first line) per code cell])."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / EXERCISE.name
        shutil.copytree(EXERCISE, folder, ignore=shutil.ignore_patterns("*.zip", "__pycache__"))
        notebook = nbformat.read(folder / NOTEBOOK, as_version=4)
        client = NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}}
        )
        cells = []
        start = time.perf_counter()
        with client.setup_kernel():
            for index, cell in enumerate(notebook.cells):
                cell_start = time.perf_counter()
                client.execute_cell(cell, index)
                if cell.cell_type == "code":
                    first = cell.source.splitlines()[0] if cell.source else ""
                    cells.append((time.perf_counter() - cell_start, first[:60]))
        return time.perf_counter() - start, cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("COURSE_DATA_DIR", str(ROOT / "data"))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    totals = []
    for run in range(1, args.runs + 1):
        total, cells = run_once()
        totals.append(total)
        print(f"run {run}: {total:.1f} s top to bottom (budget {BUDGET_S:.0f} s)")
    print("slowest cells of the last run:")
    for seconds, first in sorted(cells, reverse=True)[:5]:
        print(f"  {seconds:6.2f} s  {first}")
    print(
        f"notebook runtime: median {statistics.median(totals):.1f} s over {len(totals)} run(s), "
        f"{'within' if max(totals) <= BUDGET_S else 'OVER'} the {BUDGET_S:.0f} s budget"
    )


if __name__ == "__main__":
    main()
