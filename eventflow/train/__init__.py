"""Self-supervised training of the flow models (Hagenaars, Paredes-Vallés & de Croon, NeurIPS 2021).

- :func:`train` (``eventflow train --config FILE``): the paper's loop (truncated BPTT over loss windows of 10
  passes of 1000 events, Adam, gradient clipping) with per-lane resets, exact-resume checkpoints, a NaN guard,
  metrics logs and data parallelism (:mod:`.ddp`, through torchrun);
- :class:`TrainConfig` and :func:`load_train_config`: typed configs; shipped: ``train_snn``, ``train_ann`` (the
  paper's), ``quick_snn``, ``quick_ann`` (minutes on a CPU);
- :func:`ensure_trained`: a model trained with a shipped profile, trained once and cached under
  ``data/checkpoints``;
- :mod:`.step`: the pass and optimisation-step functions; :mod:`.bench`: training and inference speed.
"""

from eventflow.train.config import TrainConfig, config_hash, load_train_config, packaged_configs
from eventflow.train.loop import SilentLayerWarning, TrainingDivergedError, TrainResult, train
from eventflow.train.trained import ensure_trained, profile_config

__all__ = [
    "SilentLayerWarning",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "config_hash",
    "ensure_trained",
    "load_train_config",
    "packaged_configs",
    "profile_config",
    "train",
]
