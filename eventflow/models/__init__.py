"""The model zoo of Hagenaars et al. (NeurIPS 2021) at numerical parity with the reference implementation.

- :func:`build_model` / :data:`MODEL_REGISTRY`: every model by its reference class name (``LIFFireNet``,
  ``SpikingRecEVFlowNet``, ...), configured by :class:`ModelConfig`;
- the interface of every model (:class:`~eventflow.models.base.FlowModel`): ``init_state``,
  ``flow, state = model(x, state)``, ``forward_all`` (all scales, activity), ``reset_state``, ``detach_state``,
  ``spiking_layers``, ``state_spec``;
- :mod:`.checkpoint`: the reference's state_dicts and our own checkpoints.
"""

from eventflow.models.base import FlowModel, FlowOutput, LayerActivity, SpikingLayerInfo, StateTensorSpec
from eventflow.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_reference_state_dict,
    save_checkpoint,
)
from eventflow.models.config import ModelConfig, NeuronConfig, model_config
from eventflow.models.registry import MODEL_REGISTRY, ModelSpec, build_model, get_spec

__all__ = [
    "MODEL_REGISTRY",
    "CheckpointError",
    "FlowModel",
    "FlowOutput",
    "LayerActivity",
    "ModelConfig",
    "ModelSpec",
    "NeuronConfig",
    "SpikingLayerInfo",
    "StateTensorSpec",
    "build_model",
    "get_spec",
    "load_checkpoint",
    "load_model",
    "load_reference_state_dict",
    "model_config",
    "save_checkpoint",
]
