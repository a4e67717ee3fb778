"""Packing the optional exercise's submission zip. Given code.

Paths are relative to the exercise folder (the folder of the notebook), not to the current
working directory, so the function works the same from the notebook, a terminal or the grader.
"""

import json
import os
import zipfile
from pathlib import Path

EXERCISE_DIR = Path(__file__).resolve().parent.parent


def unrun_graded_cells(notebook: Path) -> str | None:
    """Why ``notebook`` as saved on disk is not ready to hand in (its graded cells were never
    run in the saved file, or it is no notebook), or None if it is."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{notebook.name} could not be read as a notebook"
    for cell in cells:
        graded = cell.get("metadata", {}).get("nbgrader", {}).get("grade")
        if cell.get("cell_type") == "code" and graded and cell.get("execution_count") is None:
            return f"{notebook.name} on disk has graded cells that were never run"
    return None


def create_submission(zip_path: str | Path = "exercise_08_optional.zip") -> Path | None:
    """Write the zip to hand in: the notebook(s) and exercise_code/*.py, nothing else.

    The zip takes the notebook as it is on disk (your answer cell included), so save it after
    running it (File > Save); a notebook whose graded cells were never run in the saved file is
    refused: this prints why and writes nothing.

    Inputs:
    - zip_path: where to write the zip, relative to the exercise folder

    Returns the absolute path of the zip, or None when the notebook on disk is not ready.
    """
    zip_path = Path(zip_path)
    zip_path = zip_path if zip_path.is_absolute() else EXERCISE_DIR / zip_path
    notebooks = sorted(EXERCISE_DIR.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(
            f"No notebook found in {EXERCISE_DIR}: put regularization.ipynb back and try again."
        )
    for notebook in notebooks:
        problem = unrun_graded_cells(notebook)
        if problem:
            print(
                f"{zip_path.name} NOT written: {problem}; save the notebook with File > Save, "
                "then run this cell again."
            )
            return None
    files = notebooks + sorted((EXERCISE_DIR / "exercise_code").glob("*.py"))
    partial = zip_path.with_name(zip_path.name + ".part")  # renamed only once complete
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(EXERCISE_DIR).as_posix())
        os.replace(partial, zip_path)
    finally:
        partial.unlink(missing_ok=True)
    print(f"Wrote {zip_path} ({len(files)} files): hand in this file.")
    return zip_path
