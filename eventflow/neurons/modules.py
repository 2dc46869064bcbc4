"""Convolutional spiking layers: thin modules that hold parameters and delegate to :mod:`.functional`.

Every layer is ``forward(x, state, residual=None) -> (out, state)`` with ``x`` the layer input
``(B, C_in, H, W)``, ``state`` its NamedTuple (start from :meth:`init_state`) and ``out`` the spikes
``(B, C_out, H', W')`` (plus ``residual`` where given, as in spike-based residual blocks, Fang et al. 2021).
Nothing is stored on the module between calls.

The input current is ``I = W_ff * x`` (feed-forward layers) or ``I = W_ff * x + W_rec * z_{t-1}`` (``*Recurrent``),
convolutions without bias, "same" padding. Parameters and initialisation follow the reference cells of
Hagenaars et al. (NeurIPS 2021): weights ``U(-sqrt(1/C_in), sqrt(1/C_in))`` (``C_in`` = input channels of that
convolution), per-channel ``(C, 1, 1)`` leaks and thresholds drawn from ``N(mean, std)``, learnable unless told
otherwise (else buffers), the surrogate width ``act_width`` as a buffer. Parameter and buffer names are those of
the reference, so its checkpoints map one to one.

>>> import torch
>>> layer = ConvLIFRecurrent(2, 4, kernel_size=3)
>>> state = layer.init_state(1, 8, 8)
>>> out, state = layer(torch.rand(1, 2, 8, 8), state)
>>> out.shape, type(state).__name__
(torch.Size([1, 4, 8, 8]), 'LIFState')
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from eventflow.neurons.functional import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    PLIFParameters,
    PLIFState,
    XLIFParameters,
    XLIFState,
    alif_step,
    get_lif_backend,
    lif_step,
    plif_step,
    presynaptic_activity,
    xlif_step,
)
from eventflow.neurons.surrogates import canonical_surrogate

MeanStd = tuple[float, float]


def add_per_channel(module: nn.Module, name: str, channels: int, mean_std: MeanStd, learnable: bool) -> None:
    """Register ``name`` on ``module``: a ``(channels, 1, 1)`` tensor drawn from ``N(mean, std)``, a Parameter if
    ``learnable`` else a buffer (so it is saved either way)."""
    mean, std = mean_std
    value = torch.randn(channels, 1, 1) * std + mean
    if learnable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def zero_state(state_cls: type, like: Tensor, batch: int, channels: int, height: int, width: int,
               device: torch.device | str | None = None, dtype: torch.dtype | None = None):
    """A ``state_cls`` NamedTuple of zero tensors ``(batch, channels, height, width)``; device and dtype default
    to those of ``like`` (a weight of the layer)."""
    zeros = [torch.zeros(batch, channels, height, width, device=device or like.device, dtype=dtype or like.dtype)
             for _ in state_cls._fields]
    return state_cls(*zeros)


class SpikingConv(nn.Module):
    """Common part of the spiking layers: the convolution(s), the surrogate and the reset switches.

    Subclasses register their neuron parameters and implement ``forward``; :meth:`_init_weights` must be called
    after the parameters are drawn (the reference's order of random draws, so equal seeds give equal weights).
    """

    neuron: str = ""
    recurrent: bool = False
    #: whether the update goes through the LIF core, whose implementation ``backend`` selects (LIF, PLIF);
    #: ALIF and XLIF have their own update in PyTorch only.
    uses_lif_core: bool = False
    spiking = True
    stateful = True
    State: type = LIFState

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, surrogate: str,
                 act_width: float, hard_reset: bool, detach: bool, backend: str = "torch"):
        super().__init__()
        padding = kernel_size // 2
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.ff = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        if self.recurrent:
            self.rec = nn.Conv2d(out_channels, out_channels, kernel_size, padding=padding, bias=False)
        canonical_surrogate(surrogate)  # fail early on an unknown name
        self.surrogate = surrogate
        self.register_buffer("act_width", torch.tensor(float(act_width)))
        self.hard_reset = hard_reset
        self.detach = detach
        self.backend = "torch"
        self.set_backend(backend)

    def _init_weights(self) -> None:
        bound = math.sqrt(1 / self.in_channels)
        nn.init.uniform_(self.ff.weight, -bound, bound)
        if self.recurrent:
            bound = math.sqrt(1 / self.out_channels)
            nn.init.uniform_(self.rec.weight, -bound, bound)

    def set_backend(self, backend: str) -> None:
        """Select the LIF core (a name in :data:`~eventflow.neurons.functional.LIF_BACKENDS`)."""
        get_lif_backend(backend)
        if backend != "torch" and not self.uses_lif_core:
            raise ValueError(f"{type(self).__name__} has no LIF core to switch; only backend 'torch' is available")
        self.backend = backend

    def current(self, x: Tensor, z_prev: Tensor) -> Tensor:
        """``I = W_ff * x`` (+ ``W_rec * z_prev`` for recurrent layers), ``(B, C_out, H', W')``."""
        ff = self.ff(x)
        if not self.recurrent:
            return ff
        return ff + self.rec(z_prev)

    def init_state(self, batch: int, height: int, width: int, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None):
        """The zero state on the layer's OUTPUT grid ``(batch, C_out, height, width)``."""
        return zero_state(self.State, self.ff.weight, batch, self.out_channels, height, width, device, dtype)

    def extra_repr(self) -> str:
        reset = "hard" if self.hard_reset else "soft"
        return f"surrogate={self.surrogate}, reset={reset}, detach={self.detach}"

    @staticmethod
    def _output(z: Tensor, residual: Tensor | None) -> Tensor:
        return z if residual is None else z + residual


class ConvLIF(SpikingConv):
    """Convolutional LIF layer (:func:`~eventflow.neurons.functional.lif_step`); reference ``ConvLIF``.

    Parameters: ``ff`` weight, ``leak`` ``a`` (``beta = sigmoid(a)``, init ``N(-4, 0.1)``), ``thresh``
    (init ``N(0.8, 0)``; the paper's training config draws ``N(0.8, 0.1)``), buffer ``act_width``.
    """

    neuron = "lif"
    uses_lif_core = True
    State = LIFState

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 surrogate: str = "arctan", act_width: float = 10.0, leak: MeanStd = (-4.0, 0.1),
                 thresh: MeanStd = (0.8, 0.0), learn_leak: bool = True, learn_thresh: bool = True,
                 hard_reset: bool = True, detach: bool = True, backend: str = "torch"):
        super().__init__(in_channels, out_channels, kernel_size, stride, surrogate, act_width, hard_reset, detach,
                         backend)
        add_per_channel(self, "leak", out_channels, leak, learn_leak)
        add_per_channel(self, "thresh", out_channels, thresh, learn_thresh)
        self._init_weights()

    def neuron_params(self) -> LIFParameters:
        return LIFParameters(self.leak, self.thresh, self.act_width, self.hard_reset, self.detach, self.surrogate)

    def forward(self, x: Tensor, state: LIFState, residual: Tensor | None = None) -> tuple[Tensor, LIFState]:
        z, state = lif_step(self.current(x, state.z), state, self.neuron_params(), self.backend)
        return self._output(z, residual), state


class ConvLIFRecurrent(ConvLIF):
    """Recurrent convolutional LIF layer, ``I = W_ff * x + W_rec * z_{t-1}``; reference ``ConvLIFRecurrent``."""

    recurrent = True


class ConvPLIF(SpikingConv):
    """Convolutional PLIF layer (:func:`~eventflow.neurons.functional.plif_step`): LIF with a presynaptic trace
    ``AvgPool_k(mean_c |x|)`` subtracted from the current; reference ``ConvPLIF``.

    Parameters: ``leak_v``, ``leak_pt`` (init ``N(-4, 0.1)``), ``add_pt`` (trace gain ``sigmoid(g)``, init
    ``N(-2, 0.1)``), ``thresh`` (init ``N(0.8, 0)``).
    """

    neuron = "plif"
    uses_lif_core = True
    State = PLIFState

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 surrogate: str = "arctan", act_width: float = 10.0, leak_v: MeanStd = (-4.0, 0.1),
                 leak_pt: MeanStd = (-4.0, 0.1), add_pt: MeanStd = (-2.0, 0.1), thresh: MeanStd = (0.8, 0.0),
                 learn_leak: bool = True, learn_thresh: bool = True, hard_reset: bool = True, detach: bool = True,
                 backend: str = "torch"):
        super().__init__(in_channels, out_channels, kernel_size, stride, surrogate, act_width, hard_reset, detach,
                         backend)
        add_per_channel(self, "leak_v", out_channels, leak_v, learn_leak)
        add_per_channel(self, "leak_pt", out_channels, leak_pt, learn_leak)
        add_per_channel(self, "add_pt", out_channels, add_pt, learn_leak)
        add_per_channel(self, "thresh", out_channels, thresh, learn_thresh)
        self._init_weights()

    def neuron_params(self) -> PLIFParameters:
        return PLIFParameters(self.leak_v, self.leak_pt, self.add_pt, self.thresh, self.act_width, self.hard_reset,
                              self.detach, self.surrogate)

    def forward(self, x: Tensor, state: PLIFState, residual: Tensor | None = None) -> tuple[Tensor, PLIFState]:
        presyn = presynaptic_activity(x, self.kernel_size, self.stride)
        z, state = plif_step(self.current(x, state.z), presyn, state, self.neuron_params(), self.backend)
        return self._output(z, residual), state


class ConvPLIFRecurrent(ConvPLIF):
    """Recurrent PLIF layer, ``I = W_ff * x + W_rec * z_{t-1}``; reference ``ConvPLIFRecurrent``."""

    recurrent = True


class ConvALIF(SpikingConv):
    """Convolutional adaptive-threshold LIF layer (:func:`~eventflow.neurons.functional.alif_step`); reference
    ``ConvALIF``. Parameters ``leak_v``, ``leak_t`` (init ``N(-4, 0.1)``), ``t0`` (``N(0.01, 0)``), ``t1``
    (``N(1.8, 0)``); by default ``t0``, ``t1`` are fixed buffers and the reset is soft.
    """

    neuron = "alif"
    State = ALIFState

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 surrogate: str = "arctan", act_width: float = 10.0, leak_v: MeanStd = (-4.0, 0.1),
                 leak_t: MeanStd = (-4.0, 0.1), t0: MeanStd = (0.01, 0.0), t1: MeanStd = (1.8, 0.0),
                 learn_leak: bool = True, learn_thresh: bool = False, hard_reset: bool = False, detach: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, surrogate, act_width, hard_reset, detach)
        add_per_channel(self, "leak_v", out_channels, leak_v, learn_leak)
        add_per_channel(self, "leak_t", out_channels, leak_t, learn_leak)
        add_per_channel(self, "t0", out_channels, t0, learn_thresh)
        add_per_channel(self, "t1", out_channels, t1, learn_thresh)
        self._init_weights()

    def neuron_params(self) -> ALIFParameters:
        return ALIFParameters(self.leak_v, self.leak_t, self.t0, self.t1, self.act_width, self.hard_reset,
                              self.detach, self.surrogate)

    def forward(self, x: Tensor, state: ALIFState, residual: Tensor | None = None) -> tuple[Tensor, ALIFState]:
        z, state = alif_step(self.current(x, state.z), state, self.neuron_params())
        return self._output(z, residual), state


class ConvALIFRecurrent(ConvALIF):
    """Recurrent ALIF layer, ``I = W_ff * x + W_rec * z_{t-1}``; reference ``ConvALIFRecurrent``."""

    recurrent = True


class ConvXLIF(SpikingConv):
    """Convolutional LIF layer whose threshold ``t0 + t1 p_t`` follows the presynaptic trace
    (:func:`~eventflow.neurons.functional.xlif_step`); reference ``ConvXLIF``. Parameters ``leak_v``, ``leak_pt``
    (init ``N(-4, 0.1)``), ``t0`` (``N(0.01, 0)``), ``t1`` (``N(1.8, 0)``); soft reset by default.
    """

    neuron = "xlif"
    State = XLIFState

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 surrogate: str = "arctan", act_width: float = 10.0, leak_v: MeanStd = (-4.0, 0.1),
                 leak_pt: MeanStd = (-4.0, 0.1), t0: MeanStd = (0.01, 0.0), t1: MeanStd = (1.8, 0.0),
                 learn_leak: bool = True, learn_thresh: bool = False, hard_reset: bool = False, detach: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, surrogate, act_width, hard_reset, detach)
        add_per_channel(self, "leak_v", out_channels, leak_v, learn_leak)
        add_per_channel(self, "leak_pt", out_channels, leak_pt, learn_leak)
        add_per_channel(self, "t0", out_channels, t0, learn_thresh)
        add_per_channel(self, "t1", out_channels, t1, learn_thresh)
        self._init_weights()

    def neuron_params(self) -> XLIFParameters:
        return XLIFParameters(self.leak_v, self.leak_pt, self.t0, self.t1, self.act_width, self.hard_reset,
                              self.detach, self.surrogate)

    def forward(self, x: Tensor, state: XLIFState, residual: Tensor | None = None) -> tuple[Tensor, XLIFState]:
        presyn = presynaptic_activity(x, self.kernel_size, self.stride)
        z, state = xlif_step(self.current(x, state.z), presyn, state, self.neuron_params())
        return self._output(z, residual), state


class ConvXLIFRecurrent(ConvXLIF):
    """Recurrent XLIF layer, ``I = W_ff * x + W_rec * z_{t-1}``; reference ``ConvXLIFRecurrent``."""

    recurrent = True
