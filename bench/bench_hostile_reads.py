"""The grader's peak memory when a probe hands back a decompression bomb.

A probe's ``data.npz`` of about 3 MB whose one member inflates to 3 GB (a ``.npy`` of zeros,
deflated) is read with :func:`autograder.grading.trusted.read_probe_data` in a fresh
process; the figure is that process's peak resident memory (``VmHWM``), next to the same
process reading an ordinary ``data.npz``. Run: ``.venv/bin/python bench/bench_hostile_reads.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BOMB_BYTES = 3 * 10**9
CHUNK = 2**24

MEASURE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from autograder.grading import trusted
data = trusted.read_probe_data(Path(sys.argv[1]))
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(int(peak) // 1024, "usable" if data is not None else "refused")
"""


def write_bomb(folder: Path) -> None:
    """``data.npz`` with one member ``w.npy``: a float64 header for BOMB_BYTES of zeros."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (BOMB_BYTES // 8,)}
    with zipfile.ZipFile(folder / "data.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("w.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            zeros = bytes(CHUNK)
            for _ in range(BOMB_BYTES // CHUNK):
                member.write(zeros)
            member.write(bytes(BOMB_BYTES % CHUNK))
    (folder / "data.json").write_text(json.dumps({}))


def write_ordinary(folder: Path) -> None:
    np.savez(folder / "data.npz", w=np.zeros((256, 784), dtype=np.float32))
    (folder / "data.json").write_text(json.dumps({}))


def peak(folder: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or f"failed: {result.stderr.strip()[-300:]}"


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        ordinary, bomb = Path(temp, "ordinary"), Path(temp, "bomb")
        ordinary.mkdir()
        bomb.mkdir()
        write_ordinary(ordinary)
        write_bomb(bomb)
        size = (bomb / "data.npz").stat().st_size
        print(f"ordinary data.npz: peak {peak(ordinary)} (MB)")
        print(
            f"bomb data.npz ({size / 2**20:.1f} MB, inflates to {BOMB_BYTES / 1e9:g} GB): "
            f"peak {peak(bomb)} (MB)"
        )


if __name__ == "__main__":
    main()
