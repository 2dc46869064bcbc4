"""The fixed-point LIF neuron: the float LIF update of :mod:`eventflow.neurons` evaluated on quantisation grids.

Operands on their grids (per-layer power-of-two formats, :mod:`eventflow.quantize.fixed_point`):

- the current ``I`` in ``Q(b_I, e_I)`` (the convolution's requantised output),
- the membrane potential ``v`` in ``Q(b_v, e_v)`` (the stored state),
- the threshold ``theta`` in the unsigned ``Q(b_theta, e_theta)``, a grid of its own: the spike decision compares
  it with the exact accumulator, so it need not share the potential's (often coarse) grid;
- the leak ``beta = sigmoid(a)`` in the unsigned ``Q(b_beta, e_beta)``; ``1 - beta`` is formed from the quantised
  ``beta``, so it is exact on the same grid and ``beta + (1 - beta) = 1`` still holds.

The update is the float one (:func:`eventflow.neurons.functional.lif_update_torch`, the registered LIF core, the
same operation order) applied to these grid values, then the new membrane potential is rounded half to even onto
its grid and saturated:

- hard reset: ``u = beta v_{t-1} (1 - z_{t-1}) + (1 - beta) I_t``; soft reset: ``u = beta v_{t-1} + (1 - beta) I_t
  - z_{t-1} theta``;
- ``z_t = H(u - theta)`` on the exact ``u`` (a device compares its accumulator with the threshold before it
  stores the potential), ``v_t = Q_v(u)``.

In integers (``q`` subscripts, ``F = max(e_v, e_I, e_theta)``) the accumulator is

    A = beta_q v_q (1 - z) 2^(F - e_v) + (2^e_beta - beta_q) I_q 2^(F - e_I)   [- z theta_q 2^(e_beta + F - e_theta)]

with ``u = A 2^-(e_beta + F)``, ``v_q = sat(round_half_even(A / 2^(e_beta + F - e_v)))`` and ``z = A > theta_q
2^(e_beta + F - e_theta)``. Every product and sum is an integer below ``2^24`` (:func:`accumulator_bits` checks it;
:func:`lif_formats` narrows the leak's grid when needed), so float32 arithmetic is exact: the PyTorch simulation,
the ONNX graph of :mod:`eventflow.quantize.onnx_int8` and an integer implementation agree bit for bit. Rounding
is the only error: per step ``|v_t - v_t^float| <= (|v_{t-1}| + |I_q|) |d beta| + |I - I_q 2^-e_I| + s_v / 2``
(``+ s_theta / 2`` after a soft reset) when both start from the same state, ``d beta`` the leak's rounding error;
see tests/test_quantize.py.

A uniform 8-bit grid over ``[-250, 1]`` (as the derivative quantised this neuron) has steps of ``251 / 255 =
0.98``: every ``beta`` in ``[0, 0.49]`` becomes 0 and the leak is lost; here ``beta in [0.011, 0.035]`` (the
authors' LIF-FireNet) gets ``e_beta = 12`` and a rounding error below 1 %.

>>> import torch
>>> from eventflow.neurons import LIFParameters, LIFState
>>> params = LIFParameters(leak=torch.full((1, 1, 1), -4.0), thresh=torch.full((1, 1, 1), 0.8))
>>> formats = LIFFormats(current=FixedPoint(8, 5), v=FixedPoint(8, 6), theta=FixedPoint(8, 7, signed=False),
...                      beta=FixedPoint(8, 13, signed=False))
>>> state = LIFState(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
>>> for i in (0.5, 0.5, 0.9):
...     z, state = fixed_point_lif_step(torch.full((1, 1, 1, 1), i), state, params, formats)
...     print(state.v.item() * 64, z.item())              # v in units of 2^-6; theta = 0.8 = 51.2 units
31.0 0.0
32.0 0.0
58.0 1.0
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from eventflow.neurons.functional import MIN_THRESH, LIFParameters, LIFState, get_lif_backend
from eventflow.neurons.surrogates import canonical_surrogate
from eventflow.quantize.fixed_point import FixedPoint, choose_format, fake_quantize

#: float32 holds every integer up to 2^24 exactly: the widest accumulator the simulation reproduces exactly.
EXACT_ACCUMULATOR_BITS = 24


class LIFFormats(NamedTuple):
    """Fixed-point formats of one LIF layer: ``current`` (input current), ``v`` (membrane potential),
    ``theta`` (threshold, unsigned), ``beta`` (leak, unsigned)."""

    current: FixedPoint
    v: FixedPoint
    theta: FixedPoint
    beta: FixedPoint


def quantized_lif_parameters(params: LIFParameters, formats: LIFFormats) -> tuple[Tensor, Tensor]:
    """``(beta, theta)`` on their grids, ``(C, 1, 1)``: ``beta = Q_beta(sigmoid(a))``, ``theta =
    max(Q_theta(max(thresh, 0.01)), 2^-e_theta)`` (a threshold stays positive). Straight-through gradients to
    ``a`` and ``thresh``."""
    beta = fake_quantize(torch.sigmoid(params.leak), formats.beta)
    theta = fake_quantize(params.thresh.clamp_min(MIN_THRESH), formats.theta).clamp_min(formats.theta.scale)
    return beta, theta


def fixed_point_lif_step(current: Tensor, state: LIFState, params: LIFParameters, formats: LIFFormats,
                         backend: str = "torch") -> tuple[Tensor, LIFState]:
    """One fixed-point LIF step (module docstring): the LIF core on grid values, the new potential rounded.

    Args:
        current: ``(B, C, H, W)`` input current (quantised onto ``formats.current`` here; a no-op for values that
            are on the grid already).
        state: previous :class:`~eventflow.neurons.LIFState`; ``v`` is quantised onto ``formats.v`` (zeros and
            states from this function are on it already), ``z`` holds 0/1 spikes.
        params: the layer's float :class:`~eventflow.neurons.LIFParameters` (leak ``a``, threshold, surrogate).
        formats: :class:`LIFFormats`.
        backend: the LIF core (:data:`eventflow.neurons.LIF_BACKENDS`).

    Returns:
        ``(z_t, LIFState(v_t, z_t))`` with ``v_t`` on the grid of ``formats.v``; straight-through gradients to the
        current, the state, the leak and the threshold, the surrogate gradient through the spikes.
    """
    beta, theta = quantized_lif_parameters(params, formats)
    update = get_lif_backend(backend)
    u, z = update(fake_quantize(current, formats.current), fake_quantize(state.v, formats.v), state.z, beta, theta,
                  params.width, params.hard_reset, params.detach, canonical_surrogate(params.surrogate))
    return z, LIFState(fake_quantize(u, formats.v), z)


def accumulator_bits(formats: LIFFormats, hard_reset: bool = True) -> float:
    """``log2`` of the largest magnitude the integer accumulator ``A`` (module docstring) can reach; at most
    :data:`EXACT_ACCUMULATOR_BITS` for the float32 simulation to be exact."""
    c, v, t, b = formats
    f = max(v.frac, c.frac) if hard_reset else max(v.frac, c.frac, t.frac)
    bound = (2 ** (v.bits - 1)) * b.qmax * 2 ** (f - v.frac)  # beta_q v_q
    bound += (2**b.frac) * (2 ** (c.bits - 1)) * 2 ** (f - c.frac)  # (2^e_beta - beta_q) I_q, 1 - beta <= 1
    if not hard_reset:
        bound += t.qmax * 2 ** (b.frac + f - t.frac)  # z theta_q
    return float(torch.tensor(float(bound)).log2())


def lif_formats(current: FixedPoint, v: FixedPoint, beta_max: float, theta_max: float, beta_bits: int,
                theta_bits: int, hard_reset: bool = True) -> LIFFormats:
    """Complete the formats of a LIF layer whose ``current`` and ``v`` grids were chosen from calibrated data:

    - ``theta``: the finest unsigned grid of ``theta_bits`` that holds the largest threshold;
    - ``beta``: the finest unsigned grid of ``beta_bits`` that holds ``beta_max``;

    both coarsened (``beta`` first) until the accumulator fits :data:`EXACT_ACCUMULATOR_BITS` (only very small
    leaks, or a soft reset with very fine thresholds, are affected).
    """
    theta = choose_format(theta_max, theta_bits, signed=False)
    beta = choose_format(beta_max, beta_bits, signed=False)
    while accumulator_bits(LIFFormats(current, v, theta, beta), hard_reset) > EXACT_ACCUMULATOR_BITS:
        if beta.frac > 0:
            beta = FixedPoint(beta.bits, beta.frac - 1, signed=False)
        else:
            theta = FixedPoint(theta.bits, theta.frac - 1, signed=False)
    return LIFFormats(current, v, theta, beta)


class LIFTrace(NamedTuple):
    """One neuron over time: potentials ``v`` and spikes ``z`` ``(T,)``, its threshold ``theta`` and formats
    (None for the float neuron)."""

    v: Tensor
    z: Tensor
    theta: float
    formats: LIFFormats | None


def lif_traces(current: Tensor, leak: float, thresh: float, bits: tuple[int, ...] = (8, 6, 4),
               hard_reset: bool = True) -> dict[str, LIFTrace]:
    """A single neuron driven by ``current`` ``(T,)``: the float LIF (:func:`eventflow.neurons.lif_step`) and
    the fixed-point LIF at each width of ``bits`` (current, potential and leak all ``bits`` wide), formats
    from the trace's own range. Keys ``"float"``, ``"8 bits"``, ..."""
    from eventflow.neurons.functional import lif_step

    params = LIFParameters(torch.full((1, 1, 1), float(leak)), torch.full((1, 1, 1), float(thresh)),
                           hard_reset=hard_reset)
    x = current.reshape(-1, 1, 1, 1, 1).float()  # (T, B=1, C=1, 1, 1)
    absmax = float(current.abs().max())
    runs: dict[str, tuple[LIFFormats | None, float]] = {"float": (None, max(float(thresh), MIN_THRESH))}
    beta = float(torch.sigmoid(torch.tensor(leak)))
    for b in bits:
        grid = choose_format(absmax, b)
        formats = lif_formats(grid, grid, beta, float(thresh), b, b, hard_reset)
        runs[f"{b} bits"] = (formats, float(quantized_lif_parameters(params, formats)[1]))
    out = {}
    for label, (formats, theta) in runs.items():
        state = LIFState(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
        vs, zs = [], []
        for i in x:
            if formats is None:
                z, state = lif_step(i, state, params)
            else:
                z, state = fixed_point_lif_step(i, state, params, formats)
            vs.append(state.v.flatten())
            zs.append(z.flatten())
        out[label] = LIFTrace(torch.cat(vs), torch.cat(zs), theta, formats)
    return out
