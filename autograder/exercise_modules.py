"""Import modules of the source exercises by path (the exercise folders are not packages)."""

from types import ModuleType

from .core.assignment import load_module
from .core.paths import REPO_ROOT


def exercise_code_module(exercise: str, module: str) -> ModuleType:
    """``<exercise>/exercise_code/<module>.py`` of the repository, imported once per process.

    Each exercise's package gets its own name (``exercise_08.exercise_code`` becomes
    ``_source_exercise_08``), so the two exercises' ``exercise_code`` never collide.
    """
    package_dir = REPO_ROOT / exercise / "exercise_code"
    package = load_module(f"_source_{exercise}", package_dir / "__init__.py", package_dir)
    return load_module(f"{package.__name__}.{module}", package_dir / f"{module}.py")
