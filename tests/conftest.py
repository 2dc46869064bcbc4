"""Shared fixtures: the shared reference folder (skipped with a reason where absent) and tiny recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eventflow import paths


def _shared_or_skip(*parts: str) -> Path:
    root = paths.shared_dir()
    if root is None:
        pytest.skip(f"shared reference folder not found (set {paths.SHARED_ENV}); CI provides it")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent from the shared folder")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _shared_or_skip()


@pytest.fixture(scope="session")
def golden_npz():
    """The reference implementation's outputs for the authors' LIF-FireNet on the ECD excerpt."""
    return np.load(_shared_or_skip("golden", "golden_liffirenet_ecd.npz"))


@pytest.fixture(scope="session")
def pretrained_liffirenet() -> Path:
    return _shared_or_skip("data", "hagenaars2021_liffirenet.pt")


@pytest.fixture(scope="session")
def ecd_h5() -> Path:
    return _shared_or_skip("data", "ecd_shapes_rotation.h5")


@pytest.fixture(scope="session")
def davis_h5() -> Path:
    return _shared_or_skip("data", "davis346_moving.h5")


@pytest.fixture
def one_thread():
    """One torch thread for the test: small or whole-frame tensors gain nothing from a second OpenMP thread,
    and two xdist workers would oversubscribe the two cores of CI."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
