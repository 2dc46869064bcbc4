"""What every flow model shares: explicit state, the step bookkeeping, activity, and the state layout.

A model's state is a tuple with one NamedTuple per stateful layer, in forward order (:attr:`FlowModel.state_names`;
feed-forward ANN layers hold none). Zeros (:meth:`FlowModel.init_state`) are the reference's initial state.
Subclasses build their layers and write their topology once in ``_forward_layers(x, step)``, calling
``step(name, x[, residual])`` for every layer; this class carries the states and records activity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from eventflow.models.config import ModelConfig
from eventflow.neurons.functional import detach_state, reset_state

State = tuple
Step = Callable[..., Tensor]


class LayerActivity(NamedTuple):
    """Activity of one layer in one forward pass: ``fraction`` of non-zero output entries (as the reference's
    ``log=True``) and, for spiking layers, ``spike_count`` per channel ``(C,)`` int64 (spikes of the state
    ``z``, residual not included), else None."""

    fraction: float
    spike_count: Tensor | None


class FlowOutput(NamedTuple):
    """Output of :meth:`FlowModel.forward_all`.

    - ``flow``: ``(B, 2, H, W)`` full-resolution prediction in tanh units (channel 0 = x); pixels per input
      window = ``flow * flow_scaling``.
    - ``flow_scales``: every prediction upsampled to ``(B, 2, H, W)`` as the reference does (nearest), coarsest
      first; ``[flow]`` for the FireNet family. The training loss averages over these.
    - ``activity``: layer name -> :class:`LayerActivity` in forward order (``"input"`` first), or None.
    """

    flow: Tensor
    flow_scales: list[Tensor]
    activity: dict[str, LayerActivity] | None


class StateTensorSpec(NamedTuple):
    """One tensor of the flattened state: ``name`` (layer path with ``_``, then the field, e.g. ``"G1_v"``) and
    ``shape`` ``(B, C, h, w)``."""

    name: str
    shape: tuple[int, ...]


class SpikingLayerInfo(NamedTuple):
    """A spiking layer: ``name`` (module path), ``neuron`` kind (``lif``, ``plif``, ``alif``, ``xlif``) and
    whether it has a recurrent convolution."""

    name: str
    neuron: str
    recurrent: bool


class LayerSpec(NamedTuple):
    """Bookkeeping of one layer: module path, its path in the reference model, local key renames ours ->
    reference (``{}``: same local names)."""

    path: str
    reference_path: str
    reference_renames: dict[str, str]


# Local names of our ConvLayer in the reference, where its convolution is called ``conv2d``.
CONV_REFERENCE_RENAMES = {"conv.weight": "conv2d.weight", "conv.bias": "conv2d.bias"}


def activity_fraction(t: Tensor) -> float:
    """Fraction of non-zero entries, computed as the reference does (float32 mean of the 0/1 mask)."""
    return t.detach().ne(0).float().mean().item()


class FlowModel(nn.Module):
    """Base class of the flow models. Subclasses define their layers, call :meth:`_set_layers` and implement
    ``_forward_layers`` and ``_state_grids``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self._layer_specs: list[LayerSpec] = []
        self._layers: dict[str, nn.Module] = {}
        self.state_names: list[str] = []

    # ------------------------------------------------------------------------------------------ subclass API

    def _set_layers(self, specs: list[LayerSpec]) -> None:
        """Declare the layers in forward order (after they were assigned as submodules)."""
        self._layer_specs = specs
        self._layers = {s.path: self.get_submodule(s.path) for s in specs}
        self.state_names = [s.path for s in specs if self._layers[s.path].stateful]

    def _forward_layers(self, x: Tensor, step: Step) -> list[Tensor]:
        """The topology: predictions at their own resolution, coarsest first."""
        raise NotImplementedError

    def _state_grids(self, height: int, width: int) -> dict[str, tuple[int, int]]:
        """Output grid ``(h, w)`` of every stateful layer for an input of ``height x width`` (validated)."""
        raise NotImplementedError

    def _prepare(self, x: Tensor) -> Tensor:
        """Input to the network proper (padding where the model needs it)."""
        return x

    def _finish(self, preds: list[Tensor], input_size: tuple[int, int], all_scales: bool) -> list[Tensor]:
        """Predictions to ``(B, 2, H, W)`` flows for an input of ``input_size`` ``(H, W)``: all of them or just
        the finest."""
        return preds if all_scales else preds[-1:]

    # ------------------------------------------------------------------------------------------------ state

    def init_state(self, batch: int, height: int, width: int, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> State:
        """The zero state for inputs ``(batch, num_bins, height, width)``: a tuple with one NamedTuple per
        stateful layer (:attr:`state_names`). Device and dtype default to the model's."""
        grids = self._state_grids(height, width)
        return tuple(self._layers[name].init_state(batch, *grids[name], device=device, dtype=dtype)
                     for name in self.state_names)

    def reset_state(self, state: State, mask: Tensor) -> State:
        """``state`` with the samples where ``mask`` ``(B,)`` bool is True set to zero."""
        return reset_state(state, mask)

    def detach_state(self, state: State) -> State:
        """``state`` detached from the autograd graph (truncated BPTT)."""
        return detach_state(state)

    def state_spec(self, batch: int, height: int, width: int) -> list[StateTensorSpec]:
        """Names and shapes of the flattened state tensors (:meth:`flatten_state` order) for inputs
        ``(batch, num_bins, height, width)``, e.g. ``StateTensorSpec("G1_v", (1, 32, 180, 240))``."""
        state = self.init_state(batch, height, width, device="meta")
        return [StateTensorSpec(f"{name.replace('.', '_')}_{field}", tuple(tensor.shape))
                for name, layer_state in zip(self.state_names, state)
                for field, tensor in zip(layer_state._fields, layer_state)]

    def flatten_state(self, state: State) -> list[Tensor]:
        """The state as a flat list of tensors, in :meth:`state_spec` order (e.g. ONNX graph inputs)."""
        return [tensor for layer_state in state for tensor in layer_state]

    def unflatten_state(self, tensors: list[Tensor]) -> State:
        """Inverse of :meth:`flatten_state`."""
        classes = [self._layers[name].State for name in self.state_names]
        expected = sum(len(cls._fields) for cls in classes)
        if len(tensors) != expected:
            raise ValueError(f"{self.config.name}: expected {expected} state tensors, got {len(tensors)}")
        out, i = [], 0
        for cls in classes:
            out.append(cls(*tensors[i:i + len(cls._fields)]))
            i += len(cls._fields)
        return tuple(out)

    # ----------------------------------------------------------------------------------------------- layers

    def spiking_layers(self) -> list[SpikingLayerInfo]:
        """The spiking layers in forward order."""
        return [SpikingLayerInfo(path, layer.neuron, layer.recurrent)
                for path, layer in self._layers.items() if layer.spiking]

    def set_lif_backend(self, backend: str) -> None:
        """Run the LIF core of every LIF/PLIF layer with ``backend`` (see
        :data:`eventflow.neurons.functional.LIF_BACKENDS`)."""
        layers = [layer for layer in self._layers.values() if getattr(layer, "uses_lif_core", False)]
        if not layers:
            raise ValueError(f"{self.config.name} has no LIF or PLIF layers whose backend could be set")
        for layer in layers:
            layer.set_backend(backend)

    def layers(self) -> dict[str, nn.Module]:
        """The layers by module path, in forward order (the prediction layers included)."""
        return dict(self._layers)

    def replace_layer(self, name: str, layer: nn.Module) -> None:
        """Put ``layer`` in the place of layer ``name``. It must keep the call convention and the state type of
        the layer it replaces (e.g. a quantised twin, :mod:`eventflow.quantize`)."""
        if name not in self._layers:
            raise ValueError(f"{self.config.name} has no layer {name!r}; its layers: {', '.join(self._layers)}")
        self.set_submodule(name, layer)
        self._set_layers(self._layer_specs)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters, as the reference counts them."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def reference_key_map(self) -> dict[str, str]:
        """Reference state_dict key -> our state_dict key, for every tensor of the model, generated from the
        architecture (each layer's reference path and local renames)."""
        mapping: dict[str, str] = {}
        for spec in self._layer_specs:
            for local in self._layers[spec.path].state_dict():
                ref_local = spec.reference_renames.get(local, local)
                mapping[f"{spec.reference_path}.{ref_local}"] = f"{spec.path}.{local}"
        return mapping

    # ---------------------------------------------------------------------------------------------- forward

    def _check_input(self, x: Tensor) -> Tensor:
        c = self.config
        if x.dim() != 4 or x.shape[1] != c.num_bins:
            raise ValueError(f"{c.name}: expected input (B, {c.num_bins}, H, W) (encoding {c.encoding!r}), "
                             f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{c.name}: expected a floating-point input, got {x.dtype}")
        if c.norm_input:
            nonzero = x != 0
            values = x[nonzero]
            x = torch.where(nonzero, (x - values.mean()) / values.std(), x)
        return x

    def _run(self, x: Tensor, state: State | None, record_activity: bool, all_scales: bool
             ) -> tuple[list[Tensor], State, dict[str, LayerActivity] | None]:
        x = self._check_input(x)
        if state is None:
            state = self.init_state(x.shape[0], x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        elif len(state) != len(self.state_names):
            raise ValueError(f"{self.config.name}: expected a state of {len(self.state_names)} layers "
                             f"({', '.join(self.state_names)}), got {len(state)}")
        prev = dict(zip(self.state_names, state))
        new: dict[str, Any] = {}
        activity = {"input": LayerActivity(activity_fraction(x), None)} if record_activity else None

        def step(name: str, inp: Tensor, residual: Tensor | None = None) -> Tensor:
            layer = self._layers[name]
            extra = () if residual is None else (residual,)
            if layer.stateful:
                out, new[name] = layer(inp, prev[name], *extra)
            else:
                out = layer(inp, *extra)
            if activity is not None:
                count = new[name].z.detach().ne(0).sum(dim=(0, 2, 3)) if layer.spiking else None
                activity[name] = LayerActivity(activity_fraction(out), count)
            return out

        preds = self._forward_layers(self._prepare(x), step)
        flows = self._finish(preds, tuple(x.shape[-2:]), all_scales)
        return flows, tuple(new[name] for name in self.state_names), activity

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One time step: ``x`` ``(B, num_bins, H, W)`` input encoding and the previous state (None: zeros) ->
        ``(flow, state)`` with flow ``(B, 2, H, W)`` in tanh units, channel 0 = x."""
        flows, state, _ = self._run(x, state, record_activity=False, all_scales=False)
        return flows[-1], state

    def forward_all(self, x: Tensor, state: State | None = None, record_activity: bool = False
                    ) -> tuple[FlowOutput, State]:
        """As :meth:`forward`, returning a :class:`FlowOutput` (every scale, activity where asked)."""
        flows, state, activity = self._run(x, state, record_activity, all_scales=True)
        return FlowOutput(flows[-1], flows, activity), state
