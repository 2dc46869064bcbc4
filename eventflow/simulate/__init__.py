"""Event-camera simulator with exact ground-truth optical flow.

A camera moves over a real photograph (bundled with scikit-image) along a smooth random homography
trajectory; events come from per-pixel log-intensity threshold crossings between renders; the optical flow
is exact because the motion model is known. Output follows the reference HDF5 layout (MVSEC-style
``flow_dt1`` / ``flow_dt4`` maps and frames), see :mod:`eventflow.io.h5write`.

Modules: :mod:`~eventflow.simulate.images` (photos, log intensity), :mod:`~eventflow.simulate.motion`
(trajectories as homographies), :mod:`~eventflow.simulate.render` (views and GT flow),
:mod:`~eventflow.simulate.esim` (threshold crossings), :mod:`~eventflow.simulate.noise` (background activity,
hot pixels), :mod:`~eventflow.simulate.sequence` (whole recordings), :mod:`~eventflow.simulate.dataset`
(the default dataset, cached under ``data/sim``).
"""

from eventflow.simulate.config import SimConfig
from eventflow.simulate.dataset import DatasetPaths, default_dataset_paths, ensure_default_dataset
from eventflow.simulate.sequence import (
    SimResult,
    ground_truth,
    iter_event_chunks,
    plan_sequence,
    simulate_sequence,
    simulate_to_h5,
)

__all__ = [
    "DatasetPaths",
    "SimConfig",
    "SimResult",
    "default_dataset_paths",
    "ensure_default_dataset",
    "ground_truth",
    "iter_event_chunks",
    "plan_sequence",
    "simulate_sequence",
    "simulate_to_h5",
]
