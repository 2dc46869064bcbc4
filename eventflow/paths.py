"""Where things live: the project root, the data cache, figures, and the shared reference material.

No absolute paths are hard-coded: the project root is found from this file, the shared folder from the
``EVENTFLOW_SHARED`` environment variable (default ``../shared`` beside the project root), and the data cache
from ``EVENTFLOW_DATA`` (default ``data/`` in the project root).
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "EVENTFLOW_SHARED"
DATA_ENV = "EVENTFLOW_DATA"


def project_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``), or the current directory if installed
    elsewhere."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def data_dir() -> Path:
    """Cache for generated datasets and checkpoints (ignored by git); created on demand."""
    path = Path(os.environ.get(DATA_ENV, project_root() / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    """Figures the README shows; created on demand."""
    path = project_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_dir() -> Path | None:
    """The shared reference folder (data, golden outputs, checkers), or None where it is absent."""
    path = Path(os.environ.get(SHARED_ENV, project_root().parent / "shared"))
    return path if path.is_dir() else None


def shared_file(*parts: str) -> Path | None:
    """A file under the shared folder, or None where the folder or the file is absent."""
    root = shared_dir()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None
