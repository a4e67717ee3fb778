"""Packing the optional exercise's submission zip. Given code.

Paths are relative to the exercise folder (the folder of the notebook), not to the current
working directory, so the function works the same from the notebook, a terminal or the grader.
"""

import os
import zipfile
from pathlib import Path

EXERCISE_DIR = Path(__file__).resolve().parent.parent


def create_submission(zip_path: str | Path = "exercise_08_optional.zip") -> Path:
    """Write the zip to hand in: the notebook(s) and exercise_code/*.py, nothing else.

    Save the notebook first (File > Save): the zip takes the file as it is on disk.

    Inputs:
    - zip_path: where to write the zip, relative to the exercise folder

    Returns the absolute path of the zip.
    """
    zip_path = Path(zip_path)
    zip_path = zip_path if zip_path.is_absolute() else EXERCISE_DIR / zip_path
    notebooks = sorted(EXERCISE_DIR.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(
            f"No notebook found in {EXERCISE_DIR}: put regularization.ipynb back and try again."
        )
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
