"""Non-spiking layers of the ANN baselines (Hagenaars et al., NeurIPS 2021): a plain convolution, a
convolutional GRU, a plain convolutional RNN and leaky (stateful, non-spiking) cells.

Same call convention as the spiking layers: stateful layers are ``forward(x, state[, residual]) -> (out, state)``
with a NamedTuple state (:meth:`init_state`); the stateless :class:`ConvLayer` is ``forward(x, residual=None)``.
Parameter names and initialisation follow the reference (tudelft/event_flow ``submodules.py``) so that its
checkpoints map one to one; all convolutions here have a bias and "same" padding.

>>> import torch
>>> gru = ConvGRU(4, 4, kernel_size=3)
>>> h, state = gru(torch.rand(1, 4, 6, 6), gru.init_state(1, 6, 6))
>>> h.shape, bool(torch.equal(h, state.h))
(torch.Size([1, 4, 6, 6]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from eventflow.neurons.functional import LeakyState, leaky_step
from eventflow.neurons.modules import MeanStd, add_per_channel, zero_state

#: Activations of the analog layers by name (``None`` in a config means no activation).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def get_activation(name: str | None) -> Callable[[Tensor], Tensor] | None:
    """The activation function ``name`` (None for none); ValueError listing the valid names otherwise."""
    if name is None:
        return None
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid choices: {', '.join(ACTIVATIONS)}, or None")
    return ACTIVATIONS[name]


class GRUState(NamedTuple):
    """State of a :class:`ConvGRU`: the hidden map ``h``, ``(B, C, H, W)``."""

    h: Tensor


class RNNState(NamedTuple):
    """State of a :class:`ConvRNN`: the hidden map ``h`` (after tanh), ``(B, C, H, W)``."""

    h: Tensor


class ConvLayer(nn.Module):
    """``out = act(W * x + b [+ residual])``: a stateless convolution with bias; reference ``ConvLayer``.

    ``w_scale`` (the SNNs' and FireFlowNet's prediction layers: 0.01) draws the weights from
    ``U(-w_scale, w_scale)`` and zeroes the bias; otherwise PyTorch's default initialisation.
    ``x`` is ``(B, C_in, H, W)``; ``out`` ``(B, C_out, H', W')``.
    """

    stateful = False
    spiking = False
    neuron = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 activation: str | None = "relu", w_scale: float | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2)
        if w_scale is not None:
            nn.init.uniform_(self.conv.weight, -w_scale, w_scale)
            nn.init.zeros_(self.conv.bias)
        self.activation = activation
        self._act = get_activation(activation)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        out = self.conv(x)
        if residual is not None:
            out = out + residual
        return out if self._act is None else self._act(out)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class ConvGRU(nn.Module):
    """Convolutional GRU (Ballas et al., ICLR 2016); reference ``ConvGRU``. With ``[a, b]`` channel concatenation:

    - ``u = sigmoid(W_u * [x, h_{t-1}])``, ``r = sigmoid(W_r * [x, h_{t-1}])``
    - ``c = tanh(W_o * [x, r h_{t-1}])``
    - ``h_t = h_{t-1} (1 - u) + c u``; the output is ``h_t``.

    Gate weights are orthogonal, biases zero (as the reference).
    """

    stateful = True
    spiking = False
    neuron = None
    recurrent = True
    State = GRUState

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        padding = kernel_size // 2
        self.hidden_channels = hidden_channels
        self.reset_gate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, kernel_size, padding=padding)
        self.update_gate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, kernel_size, padding=padding)
        self.out_gate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, kernel_size, padding=padding)
        for gate in (self.reset_gate, self.update_gate, self.out_gate):
            nn.init.orthogonal_(gate.weight)
        for gate in (self.reset_gate, self.update_gate, self.out_gate):
            nn.init.constant_(gate.bias, 0.0)

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> GRUState:
        """Zero state ``(batch, C_hidden, height, width)``."""
        return zero_state(GRUState, self.out_gate.weight, batch, self.hidden_channels, height, width, device, dtype)

    def forward(self, x: Tensor, state: GRUState) -> tuple[Tensor, GRUState]:
        h = state.h
        stacked = torch.cat([x, h], dim=1)  # (B, C_in + C_hidden, H, W)
        update = torch.sigmoid(self.update_gate(stacked))
        reset = torch.sigmoid(self.reset_gate(stacked))
        candidate = torch.tanh(self.out_gate(torch.cat([x, h * reset], dim=1)))
        h = h * (1 - update) + candidate * update
        return h, GRUState(h)


class ConvRNN(nn.Module):
    """Plain convolutional RNN for comparison with the SNNs; reference ``ConvRecurrent``:

    ``h_t = tanh(W_ff * x_t + W_rec * h_{t-1})``, output ``relu(W_out * h_t)``.
    """

    stateful = True
    spiking = False
    neuron = None
    recurrent = True
    State = RNNState

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        padding = kernel_size // 2
        self.hidden_channels = hidden_channels
        self.ff = nn.Conv2d(in_channels, hidden_channels, kernel_size, padding=padding)
        self.rec = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=padding)
        self.out = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=padding)

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> RNNState:
        """Zero state ``(batch, C_hidden, height, width)``."""
        return zero_state(RNNState, self.ff.weight, batch, self.hidden_channels, height, width, device, dtype)

    def forward(self, x: Tensor, state: RNNState) -> tuple[Tensor, RNNState]:
        h = torch.tanh(self.ff(x) + self.rec(state.h))
        return torch.relu(self.out(h)), RNNState(h)


class ConvLeaky(nn.Module):
    """Stateful non-spiking cell with a leak (:func:`~eventflow.neurons.functional.leaky_step`); reference
    ``ConvLeaky``: ``v_t = beta v_{t-1} + (1 - beta) (W * x_t + b [+ residual])``, output ``act(v_t)``,
    ``beta = sigmoid(a)`` per channel (init ``N(-4, 0.1)``)."""

    stateful = True
    spiking = False
    neuron = None
    recurrent = False
    State = LeakyState

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 activation: str | None = "relu", leak: MeanStd = (-4.0, 0.1), learn_leak: bool = True):
        super().__init__()
        self.out_channels = out_channels
        self.ff = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        add_per_channel(self, "leak", out_channels, leak, learn_leak)
        self.activation = activation
        self._act = get_activation(activation)

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> LeakyState:
        """Zero state on the OUTPUT grid ``(batch, C_out, height, width)``."""
        return zero_state(LeakyState, self.ff.weight, batch, self.out_channels, height, width, device, dtype)

    def forward(self, x: Tensor, state: LeakyState, residual: Tensor | None = None) -> tuple[Tensor, LeakyState]:
        current = self.ff(x)
        if residual is not None:
            current = current + residual
        state = leaky_step(current, state, self.leak)
        return (state.v if self._act is None else self._act(state.v)), state


class ConvLeakyRecurrent(nn.Module):
    """Recurrent leaky cell; reference ``ConvLeakyRecurrent``:
    ``v_t = tanh(beta v_{t-1} + (1 - beta) (W_ff * x_t + W_rec * v_{t-1}))``, output ``relu(W_out * v_t)``."""

    stateful = True
    spiking = False
    neuron = None
    recurrent = True
    State = LeakyState

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, leak: MeanStd = (-4.0, 0.1),
                 learn_leak: bool = True):
        super().__init__()
        padding = kernel_size // 2
        self.hidden_channels = hidden_channels
        self.ff = nn.Conv2d(in_channels, hidden_channels, kernel_size, padding=padding)
        self.rec = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=padding)
        self.out = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=padding)
        add_per_channel(self, "leak", hidden_channels, leak, learn_leak)

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> LeakyState:
        """Zero state ``(batch, C_hidden, height, width)``."""
        return zero_state(LeakyState, self.ff.weight, batch, self.hidden_channels, height, width, device, dtype)

    def forward(self, x: Tensor, state: LeakyState) -> tuple[Tensor, LeakyState]:
        ff = self.ff(x)
        v = torch.tanh(leaky_step(ff + self.rec(state.v), state, self.leak).v)
        return torch.relu(self.out(v)), LeakyState(v)
