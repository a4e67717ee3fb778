"""What a grading process prepares once per :class:`~.spec.GradingSpec`: :class:`Workspace`.

A workspace lives in a temporary folder of its own (``autograder-grade-<pid>-*``, mode 0711):
the read-only copy of the training data a student's notebook may read (never the hidden test
set), a template gradebook for the throwaway courses, the images every handed-in model runs on
(hidden, then public), and the warm parent that forks every probe and model run. The course key
and the hidden labels are read here, on the grading machine, and never travel in a task.
"""

from __future__ import annotations

import hmac
import itertools
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from .. import course
from ..core.errors import AutograderError
from ..core.paths import PACKAGE_DIR
from ..sandbox import WarmParent, support
from ..sandbox.cgroups import remove_stale
from ..sandbox.warm_parent import HOME_PREFIX
from . import trusted
from .feedback_cells import skippable_cells
from .spec import GradingSpec
from .throwaway import make_template_gradebook

TEMP_PREFIX = "autograder-grade-"


@dataclass
class Workspace:
    """The prepared state of grading one spec in one process (see the module docstring)."""

    spec: GradingSpec
    temp_root: Path
    student_data: Path
    template_db: Path
    config_text: str
    key: bytes
    hide: tuple[str, ...]
    warm: WarmParent
    verdicts: ModuleType
    model_images: Path | None = None
    hidden_labels: np.ndarray | None = None
    model_image_count: int = 0
    public_rows: np.ndarray | None = None
    """Rows of the hidden set whose accuracy is shown as ``public_accuracy``."""
    graded_rows: np.ndarray | None = None
    """The other rows: the hidden points use these."""
    feedback_skips: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per notebook, the cells the feedback run skips (:mod:`.feedback_cells`)."""
    jobs: itertools.count = field(default_factory=itertools.count)

    @classmethod
    def prepare(cls, spec: GradingSpec, warm_address: str | None = None) -> Workspace:
        """Prepare ``spec`` (raises ``AutograderError`` when the data or release is missing).

        With ``warm_address`` its payloads fork from that shared warm parent of this machine
        (:meth:`WarmParent.attach`) instead of one of its own."""
        course.REPO_ROOT = spec.repo_root
        restrict(spec.course_dir, spec.settings.data_dir)
        remove_stale_runs()
        source = course.source_dir(spec.course_dir, spec.assignment)
        if not source.is_dir():
            raise AutograderError(
                f"{source} is missing: run `python -m autograder release {spec.assignment}` first."
            )
        key = course_key(spec.settings.data_dir)
        temp_root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
        temp_root.chmod(0o711)
        warm = (
            WarmParent.attach(warm_address)
            if warm_address
            else WarmParent(preload(spec.assignment))
        )
        try:
            warm.start()
            template_db = temp_root / "template.db"
            make_template_gradebook(spec.course_dir / "gradebook.db", template_db, spec.assignment)
            workspace = cls(
                spec=spec,
                temp_root=temp_root,
                student_data=student_data_copy(spec.settings.data_dir, temp_root / "data"),
                template_db=template_db,
                config_text=course.config_text(spec.course_dir)
                + f"c.Execute.timeout = {int(spec.settings.cell_timeout_s)}\n",
                key=key,
                hide=hideable(covered_paths(spec), temp_root),
                warm=warm,
                verdicts=trusted.verdicts(spec.assignment),
                feedback_skips=feedback_skips(source, spec.notebooks),
            )
            if spec.hidden_cell is not None:
                workspace._prepare_model_images()
        except BaseException:
            warm.close()
            shutil.rmtree(temp_root, ignore_errors=True)
            raise
        return workspace

    def close(self) -> None:
        self.warm.close()
        shutil.rmtree(self.temp_root, ignore_errors=True)

    def _prepare_model_images(self) -> None:
        """One ``.npy`` of the images every handed-in model is run on: hidden, then public."""
        from ..data import load_hidden_set

        try:
            images, labels = load_hidden_set(self.spec.settings.data_dir)
        except FileNotFoundError as error:
            raise AutograderError(str(error)) from error
        hidden = (images.astype(np.float32) / 255.0)[:, None, :, :]
        context = trusted.Context(self.spec.assignment, 0, self.spec.settings.data_dir)
        public = self.verdicts.model_images(context)
        everything = np.ascontiguousarray(np.concatenate([hidden, public]), dtype=np.float32)
        folder = self.temp_root / "model-images"
        folder.mkdir(mode=0o755)
        self.model_images = folder / "images.npy"
        np.save(self.model_images, everything, allow_pickle=False)
        self.model_images.chmod(0o444)
        self.hidden_labels = labels.astype(np.int64)
        self.model_image_count = len(everything)
        self.public_rows, self.graded_rows = split_hidden(
            len(labels), self.key, self.spec.settings.public_fraction
        )


def feedback_skips(source: Path, notebooks: list[str]) -> dict[str, frozenset[str]]:
    """For each notebook of the source version, the cells its feedback run skips."""
    skips = {}
    for name in notebooks:
        path = source / f"{name}.ipynb"
        notebook = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        skips[name] = skippable_cells(notebook)
    return skips


def split_hidden(count: int, key: bytes, public_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The hidden set's rows split into a public part (``public_fraction`` of them) and the
    graded rest: the same split for every submission of a course, drawn from the course key."""
    seed = int.from_bytes(hmac.new(key, b"public part of the hidden set", "sha256").digest()[:8])
    order = np.random.default_rng(seed).permutation(count)
    public = int(round(count * public_fraction))
    return np.sort(order[:public]), np.sort(order[public:])


def preload(assignment: str) -> dict:
    """What the warm parent imports before it forks: the model rules, the probes, and the
    libraries the student's modules import."""
    modules = {"probes": str(trusted.probes_path(assignment))}
    rules = course.exercise_dir(assignment) / "exercise_code" / "model_rules.py"
    if assignment in course.HIDDEN_CELL:
        modules["model_rules"] = str(rules)
    imports = ["tqdm.auto", "torch.nn.functional", "torchvision.transforms.v2"]
    return {"modules": modules, "imports": imports, "notebook": True}


def course_key(data_dir: Path) -> bytes:
    """The course key (raises ``AutograderError`` when the data is not prepared).

    Only whether the files ``python -m autograder data`` makes last (the hidden set and its
    manifest) are there is checked here, not their contents: the workers verify the hidden set
    when they load it, and hashing the training set on every run cost seconds."""
    from ..data import HIDDEN_IMAGES, HIDDEN_LABELS, MANIFEST, hidden_dir
    from ..data import course_key as read_key

    folder = hidden_dir(data_dir)
    missing = [n for n in (HIDDEN_IMAGES, HIDDEN_LABELS, MANIFEST) if not (folder / n).is_file()]
    if missing:
        raise AutograderError(
            f"{folder / missing[0]} is missing: run `python -m autograder data` first."
        )
    try:
        return read_key(data_dir)
    except FileNotFoundError as error:
        raise AutograderError(str(error)) from error


def restrict(course_dir: Path, data_dir: Path) -> None:
    """Make the course and the hidden test data unreadable for sandbox users (root runs only)."""
    if os.geteuid() != 0:
        return
    course_dir.chmod(0o700)
    for path in (Path(data_dir) / "hidden", Path(data_dir) / "MNIST" / "raw"):
        for item in path.glob("t10k-*") if path.name == "raw" else [path]:
            if item.exists() and not item.is_symlink():
                item.chmod(0o700 if item.is_dir() else 0o600)


def remove_stale_runs() -> None:
    """Delete temporary folders (work folders, warm parents' homes) and cgroups of grading
    processes that were killed."""
    for prefix in (TEMP_PREFIX, HOME_PREFIX):
        for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = path.name[len(prefix) :].split("-")[0]
            if pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
    if support().cgroups.used():
        remove_stale(support().cgroups, alive)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def covered_paths(spec: GradingSpec) -> set[Path]:
    """What a sandbox must not see: the course, the data, the exercises' sources, and everything
    in the instructor's repositories but the Python environment and this package."""
    hidden = {spec.course_dir, Path(spec.settings.data_dir).resolve()}
    hidden |= {course.exercise_dir(a) for a in course.ASSIGNMENTS}
    for repository in {course.REPO_ROOT.resolve(), PACKAGE_DIR.parent}:
        hidden |= {entry.resolve() for entry in repository.iterdir() if not entry.is_symlink()}
    return hidden


def hideable(paths: set[Path], temp_root: Path) -> tuple[str, ...]:
    """The paths that can be covered in the sandbox: not holding its work folder or Python."""
    keep = [temp_root.resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    keep.append(PACKAGE_DIR)
    usable = []
    for path in sorted(paths):
        if path.exists() and not any(k == path or path in k.parents for k in keep):
            usable.append(str(path))
    return tuple(usable)


def student_data_copy(data_dir: Path, target: Path) -> Path:
    """A read-only copy of the training files and the split files (never the hidden test)."""
    data_dir = Path(data_dir)
    raw = target / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        if (data_dir / "MNIST" / "raw" / name).is_file():
            shutil.copyfile(data_dir / "MNIST" / "raw" / name, raw / name)
    if (data_dir / "splits").is_dir():
        shutil.copytree(data_dir / "splits", target / "splits")
    for path in sorted(target.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    target.chmod(0o555)
    return target
