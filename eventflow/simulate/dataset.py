"""The embedded default dataset: simulated on first use, cached under ``data/sim/<profile>/`` (ignored by git).

Splits (the photos and motions of the test split are never seen in training):

- ``train``: 128x128 sensor. Photos ``astronaut, camera, brick, grass, chelsea, moon, rocket, hubble_deep_field,
  immunohistochemistry, retina, page, text`` (in turn); motion kinds ``translation, rotation, zoom, mixed``.
- ``test``: 256x256 sensor (MVSEC's working resolution). Photos ``coffee, gravel, coins, motorcycle_left``;
  motion kinds ``perspective`` (held out from training) and ``mixed`` (fresh trajectories).

Profiles: ``quick`` (14 training sequences of 2 s, 4 test sequences of 1 s: a few minutes of CPU training and
evaluation, which reads a few GT intervals per test sequence; about 30 CPU-seconds to generate) and ``full``
(56 training sequences of 6 s, 8 test sequences of 6 s). Every sequence adds light background noise (0.1 events
per pixel per second); training sequences cycle the contrast threshold through 0.3, 0.4 and 0.5, test sequences
use 0.35. Seeds are fixed, so every machine builds the same files.

``manifest.json`` records, per file, its split, seed, full config, the simulator version and the HDF5 filters
(:data:`STORAGE`); :func:`ensure_default_dataset` regenerates only files that are missing or whose record differs
(e.g. after :data:`~eventflow.simulate.sequence.SIMULATOR_VERSION` changes). Files and the manifest are written
atomically, and a lock file serialises concurrent callers.

>>> [s.name for s in dataset_specs("quick") if s.split == "test"]
['test_00_coffee_perspective', 'test_01_gravel_mixed', 'test_02_coins_perspective', 'test_03_motorcycle_left_mixed']
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from tqdm.auto import tqdm

from eventflow.atomic import atomic_path, folder_lock
from eventflow.config import to_dict
from eventflow.paths import data_dir
from eventflow.simulate.config import SimConfig
from eventflow.simulate.sequence import SIMULATOR_VERSION, simulate_to_h5

TRAIN_IMAGES: tuple[str, ...] = (
    "astronaut", "camera", "brick", "grass", "chelsea", "moon", "rocket", "hubble_deep_field",
    "immunohistochemistry", "retina", "page", "text",
)
TEST_IMAGES: tuple[str, ...] = ("coffee", "gravel", "coins", "motorcycle_left")
TRAIN_MOTIONS: tuple[str, ...] = ("translation", "rotation", "zoom", "mixed")
TEST_MOTIONS: tuple[str, ...] = ("perspective", "mixed")
# Contrast thresholds C+ = C- (log units): varied across training sequences (domain randomisation, as in
# Stoffregen et al., ECCV 2020), one held-out value for testing; both give event rates near real recordings'.
TRAIN_CONTRASTS: tuple[float, ...] = (0.3, 0.4, 0.5)
TEST_CONTRASTS: tuple[float, ...] = (0.35,)
TRAIN_RESOLUTION = (128, 128)
TEST_RESOLUTION = (256, 256)
NOISE_RATE_HZ = 0.1
MANIFEST = "manifest.json"
# HDF5 filters of the dataset files (see eventflow.io.h5write.write_recording): gzip behind the byte shuffle.
STORAGE: Mapping[str, object] = MappingProxyType({"compression": "gzip", "shuffle": True})


class SequenceSpec(NamedTuple):
    """One file of a dataset: ``name`` (file stem), ``split`` ('train' or 'test'), its config and seed."""

    name: str
    split: str
    config: SimConfig
    seed: int


@dataclass(frozen=True)
class DatasetPaths:
    """Where a dataset lives: ``root``, the ``train`` and ``test`` HDF5 files, the ``manifest`` JSON, and the
    files that the call returning it ``generated`` (the others were reused)."""

    root: Path
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    manifest: Path
    generated: tuple[Path, ...] = ()

    def summary(self) -> dict[str, object]:
        """Plain-JSON description (for printing)."""
        return {
            "root": str(self.root),
            "manifest": str(self.manifest),
            "train": [str(p) for p in self.train],
            "test": [str(p) for p in self.test],
            "generated": [str(p) for p in self.generated],
        }


def _split_specs(split: str, count: int, images: tuple[str, ...], motions: tuple[str, ...],
                 contrasts: tuple[float, ...], resolution: tuple[int, int], duration: float,
                 seed0: int) -> list[SequenceSpec]:
    specs = []
    for i in range(count):
        photo = images[i % len(images)]
        motion = motions[i % len(motions)]
        c = contrasts[i % len(contrasts)]
        config = SimConfig(resolution=resolution, duration=duration, image=(photo,), motion=motion,
                           contrast_pos=c, contrast_neg=c, noise_rate_hz=NOISE_RATE_HZ)
        specs.append(SequenceSpec(f"{split}_{i:02d}_{photo}_{motion}", split, config, seed0 + i))
    return specs


def _quick() -> list[SequenceSpec]:
    return (_split_specs("train", 14, TRAIN_IMAGES, TRAIN_MOTIONS, TRAIN_CONTRASTS, TRAIN_RESOLUTION, 2.0, 1000)
            + _split_specs("test", 4, TEST_IMAGES, TEST_MOTIONS, TEST_CONTRASTS, TEST_RESOLUTION, 1.0, 9000))


def _full() -> list[SequenceSpec]:
    return (_split_specs("train", 56, TRAIN_IMAGES, TRAIN_MOTIONS, TRAIN_CONTRASTS, TRAIN_RESOLUTION, 6.0, 2000)
            + _split_specs("test", 8, TEST_IMAGES, TEST_MOTIONS, TEST_CONTRASTS, TEST_RESOLUTION, 6.0, 9100))


PROFILES = {"quick": _quick, "full": _full}


def dataset_specs(profile: str = "quick") -> list[SequenceSpec]:
    """The sequences of a profile ('quick' or 'full')."""
    if profile not in PROFILES:
        raise ValueError(f"unknown dataset profile {profile!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[profile]()


def _paths(root: Path, specs: list[SequenceSpec]) -> DatasetPaths:
    files = {s.name: root / s.split / f"{s.name}.h5" for s in specs}
    return DatasetPaths(
        root,
        tuple(files[s.name] for s in specs if s.split == "train"),
        tuple(files[s.name] for s in specs if s.split == "test"),
        root / MANIFEST,
    )


def default_dataset_paths(profile: str = "quick") -> DatasetPaths:
    """Paths of the default dataset of ``profile`` under ``data_dir()/sim/<profile>`` (generates nothing)."""
    return _paths(data_dir() / "sim" / profile, dataset_specs(profile))


def _record(spec: SequenceSpec) -> dict[str, object]:
    return {
        "split": spec.split,
        "seed": spec.seed,
        "simulator_version": SIMULATOR_VERSION,
        "config": to_dict(spec.config),
        "storage": dict(STORAGE),
    }


def _read_manifest(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # a damaged manifest only means every file is checked again and regenerated
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _write_manifest(path: Path, files: dict[str, dict]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"simulator_version": SIMULATOR_VERSION, "files": files}, indent=1,
                                  sort_keys=True))


def _generate(root: Path, spec: SequenceSpec) -> SequenceSpec:
    simulate_to_h5(root / spec.split / f"{spec.name}.h5", spec.config, spec.seed, **STORAGE)
    return spec


def ensure_dataset(
    specs: list[SequenceSpec], root: str | os.PathLike, progress: bool = False, workers: int = 1
) -> DatasetPaths:
    """Make sure every sequence in ``specs`` exists under ``root`` as recorded in its manifest; generate the
    missing or outdated ones, in ``workers`` processes (each file depends only on its own spec and seed, so
    the output does not depend on ``workers``). Idempotent. Returns the paths."""
    root = Path(root)
    paths = _paths(root, specs)
    with folder_lock(root):
        recorded = _read_manifest(paths.manifest)
        files = {name: rec for name, rec in recorded.items() if name in {s.name for s in specs}}
        todo = [s for s in specs if recorded.get(s.name, {}).get("record") != _record(s)
                or not (root / s.split / f"{s.name}.h5").is_file()]
        with contextlib.ExitStack() as stack:
            if workers > 1 and len(todo) > 1:
                pool = stack.enter_context(ProcessPoolExecutor(min(workers, len(todo))))
                done = (f.result() for f in as_completed([pool.submit(_generate, root, s) for s in todo]))
            else:
                done = (_generate(root, s) for s in todo)
            for spec in tqdm(done, total=len(todo), desc=f"simulating {root.name}", disable=not progress or not todo):
                files[spec.name] = {"record": _record(spec), "file": f"{spec.split}/{spec.name}.h5"}
                _write_manifest(paths.manifest, files)  # after each file, so an interrupted run keeps its work
        if files != recorded or not paths.manifest.is_file():
            _write_manifest(paths.manifest, files)
    return replace(paths, generated=tuple(root / s.split / f"{s.name}.h5" for s in todo))


def ensure_default_dataset(profile: str = "quick", progress: bool = False) -> DatasetPaths:
    """The default dataset of ``profile`` ('quick' or 'full'), generated on first use under
    ``data_dir()/sim/<profile>`` (one process per CPU core) and reused afterwards (see the module docstring)."""
    specs = dataset_specs(profile)
    return ensure_dataset(specs, data_dir() / "sim" / profile, progress=progress, workers=os.cpu_count() or 1)
