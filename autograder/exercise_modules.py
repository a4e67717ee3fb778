"""Import modules of the source exercises by path (the exercise folders are not packages)."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]


def exercise_code_module(exercise: str, module: str) -> ModuleType:
    """``<exercise>/exercise_code/<module>.py`` of the source tree, imported once per process.

    Each exercise's package gets its own name (``exercise_08.exercise_code`` becomes
    ``_source_exercise_08``), so the two exercises' ``exercise_code`` never collide.
    """
    package_name = f"_source_{exercise}"
    if package_name not in sys.modules:
        package_dir = REPO_ROOT / exercise / "exercise_code"
        spec = importlib.util.spec_from_file_location(
            package_name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[package_name] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{package_name}.{module}")
