"""Spiking neuron steps as pure functions with explicit state: ``step(current, state, params) -> (z, state)``.

The input current ``I_t`` is computed by the caller (the convolution(s) of a layer); these functions apply the
neuron dynamics of Hagenaars, Paredes-Vallés & de Croon (NeurIPS 2021; the reference cells) per element of
``(B, C, H, W)`` tensors, with per-channel parameters of shape ``(C, 1, 1)``:

- leak ``beta = sigmoid(a)`` (a learnable ``a`` keeps ``beta`` in (0, 1); Fang et al., ICCV 2021),
- threshold ``theta = max(thresh, 0.01)``,
- spikes ``z_t = H(v_t - theta)`` with a surrogate gradient (:mod:`eventflow.neurons.surrogates`),
- ``zd = z.detach()`` in the reset term only (Zenke & Vogels 2021): gradients still flow through ``v`` and, in
  recurrent layers, through the recurrent convolution of ``z``.

The floating-point operations are done in the same order as the reference implementation (tudelft/event_flow),
so outputs agree bit for bit; keep that order when editing.

States are NamedTuples of ``(B, C, H, W)`` tensors that start at zero; :func:`reset_state` and
:func:`detach_state` work on any nesting of tuples of tensors (a whole model's state).

>>> import torch
>>> params = LIFParameters(leak=torch.zeros(1, 1, 1), thresh=torch.full((1, 1, 1), 0.8))
>>> state = LIFState(v=torch.zeros(1, 1, 1, 1), z=torch.zeros(1, 1, 1, 1))
>>> for _ in range(3):
...     z, state = lif_step(torch.full((1, 1, 1, 1), 1.0), state, params)
...     print(round(state.v.item(), 4), z.item())
0.5 0.0
0.75 0.0
0.875 1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from eventflow.neurons.surrogates import canonical_surrogate, get_surrogate

#: Lower bounds of the threshold parameters (as in the reference cells).
MIN_THRESH = 0.01
MIN_T0 = 0.01
MIN_T1 = 0.0


# ----------------------------------------------------------------------------------------------------- states


class LIFState(NamedTuple):
    """State of a LIF layer: membrane potential ``v`` and spikes ``z``, both ``(B, C, H, W)``."""

    v: Tensor
    z: Tensor


class PLIFState(NamedTuple):
    """State of a PLIF layer: ``v``, ``z`` and the presynaptic trace ``pt``, all ``(B, C, H, W)``."""

    v: Tensor
    z: Tensor
    pt: Tensor


class ALIFState(NamedTuple):
    """State of an ALIF layer: ``v``, ``z`` and the threshold adaptation ``a`` (reference name ``t``), all
    ``(B, C, H, W)``."""

    v: Tensor
    z: Tensor
    a: Tensor


class XLIFState(NamedTuple):
    """State of an XLIF layer: ``v``, ``z`` and the presynaptic trace ``pt``, all ``(B, C, H, W)``."""

    v: Tensor
    z: Tensor
    pt: Tensor


class LeakyState(NamedTuple):
    """State of a non-spiking leaky cell: the leaky integrator ``v``, ``(B, C, H, W)``."""

    v: Tensor


# ------------------------------------------------------------------------------------------------- parameters


class LIFParameters(NamedTuple):
    """Parameters of a LIF layer (tensors ``(C, 1, 1)``): raw leak ``a`` (``beta = sigmoid(a)``), threshold
    ``thresh`` (clamped to >= 0.01), surrogate ``width``, reset mode, detach of the reset path, surrogate name."""

    leak: Tensor
    thresh: Tensor
    width: Tensor | float = 10.0
    hard_reset: bool = True
    detach: bool = True
    surrogate: str = "arctan"


class PLIFParameters(NamedTuple):
    """Parameters of a PLIF layer: membrane leak ``leak_v``, trace leak ``leak_pt`` and trace gain ``add_pt``
    (all through a sigmoid), threshold ``thresh`` (>= 0.01); tensors ``(C, 1, 1)``."""

    leak_v: Tensor
    leak_pt: Tensor
    add_pt: Tensor
    thresh: Tensor
    width: Tensor | float = 10.0
    hard_reset: bool = True
    detach: bool = True
    surrogate: str = "arctan"


class ALIFParameters(NamedTuple):
    """Parameters of an ALIF layer: leaks ``leak_v``, ``leak_t`` (sigmoid), threshold ``theta = t0 + t1 a``
    with ``t0 >= 0.01``, ``t1 >= 0``; tensors ``(C, 1, 1)``. Soft reset by default (Yin et al. 2021)."""

    leak_v: Tensor
    leak_t: Tensor
    t0: Tensor
    t1: Tensor
    width: Tensor | float = 10.0
    hard_reset: bool = False
    detach: bool = True
    surrogate: str = "arctan"


class XLIFParameters(NamedTuple):
    """Parameters of an XLIF layer: leaks ``leak_v``, ``leak_pt`` (sigmoid), threshold ``theta = t0 + t1 pt``
    with ``t0 >= 0.01``, ``t1 >= 0``; tensors ``(C, 1, 1)``. Soft reset by default."""

    leak_v: Tensor
    leak_pt: Tensor
    t0: Tensor
    t1: Tensor
    width: Tensor | float = 10.0
    hard_reset: bool = False
    detach: bool = True
    surrogate: str = "arctan"


# ------------------------------------------------------------------------------------------- the LIF update


def membrane_update(current: Tensor, v: Tensor, zd: Tensor, beta: Tensor, reset_theta: Tensor | None,
                    hard_reset: bool) -> Tensor:
    """One membrane step of every LIF-type neuron here (shapes broadcast to ``(B, C, H, W)``):

    - hard reset: ``v_t = beta v_{t-1} (1 - zd_{t-1}) + (1 - beta) I_t``
    - soft reset: ``v_t = beta v_{t-1} + (1 - beta) I_t - zd_{t-1} theta_reset``

    ``zd`` are the previous spikes (detached by the caller where asked); ``reset_theta`` is only used by the
    soft reset (it may be None with a hard reset).
    """
    if hard_reset:
        return v * beta * (1 - zd) + (1 - beta) * current
    return leaky_integrate(current, v, beta) - zd * reset_theta


def leaky_integrate(current: Tensor, v: Tensor, beta: Tensor) -> Tensor:
    """Leaky integration without reset, ``beta v_{t-1} + (1 - beta) I_t`` (shapes broadcast)."""
    return v * beta + (1 - beta) * current


def lif_update_torch(current: Tensor, v: Tensor, z: Tensor, beta: Tensor, theta: Tensor, width: Tensor | float,
                     hard_reset: bool, detach: bool, surrogate: str) -> tuple[Tensor, Tensor]:
    """The LIF core in PyTorch: ``(v_out, z_out)`` from current ``I`` and previous ``(v, z)``, all
    ``(B, C, H, W)``, with ``beta = sigmoid(leak)`` and ``theta = max(thresh, 0.01)`` of shape ``(C, 1, 1)``
    already computed by the caller:

    ``v_out`` by :func:`membrane_update` (reset threshold ``theta``), ``z_out = H(v_out - theta)``.

    This signature is the backend seam of :func:`lif_step` (a fused C++ operator implements the same one).
    """
    zd = z.detach() if detach else z
    v_out = membrane_update(current, v, zd, beta, theta, hard_reset)
    z_out = get_surrogate(surrogate)(v_out - theta, width)
    return v_out, z_out


class LIFUpdate(Protocol):
    def __call__(self, current: Tensor, v: Tensor, z: Tensor, beta: Tensor, theta: Tensor, width: Tensor | float,
                 hard_reset: bool, detach: bool, surrogate: str) -> tuple[Tensor, Tensor]: ...


#: Implementations of the LIF core, selected by the ``backend`` argument of :func:`lif_step`.
LIF_BACKENDS: dict[str, LIFUpdate] = {"torch": lif_update_torch}


def register_lif_backend(name: str, update: LIFUpdate) -> None:
    """Make ``update`` (signature of :func:`lif_update_torch`) selectable as ``backend=name``."""
    LIF_BACKENDS[name] = update


def get_lif_backend(name: str) -> LIFUpdate:
    """The LIF core registered as ``name``; ValueError listing the registered backends otherwise."""
    if name not in LIF_BACKENDS:
        raise ValueError(f"unknown LIF backend {name!r}; valid choices: {', '.join(LIF_BACKENDS)}")
    return LIF_BACKENDS[name]


# ------------------------------------------------------------------------------------------------ the steps


def lif_step(current: Tensor, state: LIFState, params: LIFParameters,
             backend: str = "torch") -> tuple[Tensor, LIFState]:
    """Leaky integrate-and-fire step (Hagenaars et al., NeurIPS 2021).

    ``I_t`` is ``W_ff * x_t`` (feed-forward) or ``W_ff * x_t + W_rec * z_{t-1}`` (recurrent), computed by the
    caller as two separate convolutions added. With ``beta = sigmoid(a)``, ``theta = max(thresh, 0.01)``:

    - hard reset: ``v_t = beta v_{t-1} (1 - zd_{t-1}) + (1 - beta) I_t``
    - soft reset: ``v_t = beta v_{t-1} + (1 - beta) I_t - zd_{t-1} theta``
    - ``z_t = H(v_t - theta)``

    Args:
        current: ``(B, C, H, W)`` input current.
        state: previous :class:`LIFState` (zeros at the start of a sequence).
        params: :class:`LIFParameters`.
        backend: name in :data:`LIF_BACKENDS` of the core update (``"torch"``: :func:`lif_update_torch`).

    Returns:
        ``(z_t, LIFState(v_t, z_t))``, spikes 0/1 of the dtype of ``current``.
    """
    beta = torch.sigmoid(params.leak)
    theta = params.thresh.clamp_min(MIN_THRESH)
    update = get_lif_backend(backend)
    v, z = update(current, state.v, state.z, beta, theta, params.width, params.hard_reset, params.detach,
                  canonical_surrogate(params.surrogate))
    return z, LIFState(v, z)


def presynaptic_activity(x: Tensor, kernel_size: int, stride: int = 1) -> Tensor:
    """``AvgPool_k(mean_c |x|)``: the presynaptic activity that drives the PLIF and XLIF traces
    (Paredes-Vallés et al., TPAMI 2020). ``x`` is the layer input ``(B, C_in, H, W)``; the result is
    ``(B, 1, H', W')`` on the layer's output grid (zero padding ``k // 2``, padded zeros counted)."""
    return F.avg_pool2d(x.abs().mean(1, keepdim=True), kernel_size, stride, padding=kernel_size // 2)


def plif_step(current: Tensor, presyn: Tensor, state: PLIFState, params: PLIFParameters,
              backend: str = "torch") -> tuple[Tensor, PLIFState]:
    """LIF step with presynaptic adaptation (PLIF; Hagenaars et al., NeurIPS 2021, after Paredes-Vallés
    et al. 2020). With ``beta_v = sigmoid(a_v)``, ``beta_p = sigmoid(a_p)``, ``g = sigmoid(add_pt)``:

    - ``p_t = beta_p p_{t-1} + (1 - beta_p) presyn_t`` (``presyn`` from :func:`presynaptic_activity`)
    - the LIF update of :func:`lif_step` with current ``I_t - g p_t``.

    ``current`` is ``(B, C, H, W)``, ``presyn`` ``(B, 1, H, W)``; the trace becomes per-channel through
    ``beta_p``. Returns ``(z_t, PLIFState(v_t, z_t, p_t))``.
    """
    beta_pt = torch.sigmoid(params.leak_pt)
    gain = torch.sigmoid(params.add_pt)
    pt = state.pt * beta_pt + (1 - beta_pt) * presyn
    z, lif = lif_step(current - gain * pt, LIFState(state.v, state.z),
                      LIFParameters(params.leak_v, params.thresh, params.width, params.hard_reset, params.detach,
                                    params.surrogate), backend)
    return z, PLIFState(lif.v, lif.z, pt)


def _adaptive_threshold_update(current: Tensor, v: Tensor, z: Tensor, leak_v: Tensor, t0: Tensor, t1: Tensor,
                               adapt_prev: Tensor, adapt: Tensor, params: ALIFParameters | XLIFParameters,
                               ) -> tuple[Tensor, Tensor]:
    """``(v_t, z_t)`` of a neuron with threshold ``theta_t = t0 + t1 adapt_t``; the soft reset subtracts the
    threshold of the previous step, ``t0 + t1 adapt_{t-1}``, as the reference does."""
    beta_v = torch.sigmoid(leak_v)
    theta = t0 + t1 * adapt
    zd = z.detach() if params.detach else z
    reset_theta = None if params.hard_reset else t0 + t1 * adapt_prev
    v_out = membrane_update(current, v, zd, beta_v, reset_theta, params.hard_reset)
    z_out = get_surrogate(params.surrogate)(v_out - theta, params.width)
    return v_out, z_out


def alif_step(current: Tensor, state: ALIFState, params: ALIFParameters) -> tuple[Tensor, ALIFState]:
    """Adaptive LIF step (ALIF; Bellec et al. 2020, Yin et al. 2021; Hagenaars et al., NeurIPS 2021).

    With ``beta_v = sigmoid(a_v)``, ``beta_t = sigmoid(a_t)``, ``t0 = max(t0, 0.01)``, ``t1 = max(t1, 0)``:

    - ``a_t = beta_t a_{t-1} + (1 - beta_t) z_{t-1}`` (``z`` not detached here)
    - ``theta_t = t0 + t1 a_t``
    - soft reset (default): ``v_t = beta_v v_{t-1} + (1 - beta_v) I_t - zd_{t-1} (t0 + t1 a_{t-1})``;
      hard reset as in :func:`lif_step`
    - ``z_t = H(v_t - theta_t)``

    ``current`` is ``(B, C, H, W)``. Returns ``(z_t, ALIFState(v_t, z_t, a_t))``.
    """
    t0 = params.t0.clamp_min(MIN_T0)
    t1 = params.t1.clamp_min(MIN_T1)
    beta_t = torch.sigmoid(params.leak_t)
    a = state.a * beta_t + (1 - beta_t) * state.z
    v, z = _adaptive_threshold_update(current, state.v, state.z, params.leak_v, t0, t1, state.a, a, params)
    return z, ALIFState(v, z, a)


def xlif_step(current: Tensor, presyn: Tensor, state: XLIFState, params: XLIFParameters) -> tuple[Tensor, XLIFState]:
    """LIF step whose threshold adapts to the presynaptic trace (XLIF, a cross of PLIF and ALIF; Hagenaars
    et al., NeurIPS 2021). With ``beta_p = sigmoid(a_p)``, clamped ``t0``, ``t1`` as in :func:`alif_step`:

    - ``p_t = beta_p p_{t-1} + (1 - beta_p) presyn_t``
    - ``theta_t = t0 + t1 p_t``; soft reset (default) subtracts ``zd_{t-1} (t0 + t1 p_{t-1})``
    - ``z_t = H(v_t - theta_t)``

    ``current`` is ``(B, C, H, W)``, ``presyn`` ``(B, 1, H, W)``. Returns ``(z_t, XLIFState(v_t, z_t, p_t))``.
    """
    t0 = params.t0.clamp_min(MIN_T0)
    t1 = params.t1.clamp_min(MIN_T1)
    beta_pt = torch.sigmoid(params.leak_pt)
    pt = state.pt * beta_pt + (1 - beta_pt) * presyn
    v, z = _adaptive_threshold_update(current, state.v, state.z, params.leak_v, t0, t1, state.pt, pt, params)
    return z, XLIFState(v, z, pt)


def leaky_step(current: Tensor, state: LeakyState, leak: Tensor) -> LeakyState:
    """Non-spiking leaky integrator of the ANN baselines: ``v_t = beta v_{t-1} + (1 - beta) I_t``,
    ``beta = sigmoid(a)`` of shape ``(C, 1, 1)``; ``current`` and the state are ``(B, C, H, W)``."""
    return LeakyState(leaky_integrate(current, state.v, torch.sigmoid(leak)))


# ------------------------------------------------------------------------------------------ state utilities


def map_state(fn: Callable[[Tensor], Tensor], state):
    """Apply ``fn`` to every tensor of a state: a tensor, or tuples (NamedTuples kept) and lists of states."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple):
        items = [map_state(fn, s) for s in state]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    if isinstance(state, list):
        return [map_state(fn, s) for s in state]
    raise ValueError(f"a state holds tensors in (named) tuples and lists, got {type(state).__name__}")


def detach_state(state):
    """The state with every tensor detached from the autograd graph (truncated backpropagation through time).

    >>> s = LIFState(torch.ones(1, requires_grad=True) * 2, torch.zeros(1))
    >>> detach_state((s,))[0].v.requires_grad
    False
    """
    return map_state(Tensor.detach, state)


def reset_state(state, mask: Tensor):
    """The state with the samples where ``mask`` is True set to zero (e.g. a new sequence starts there).

    Args:
        state: any nesting of tuples of ``(B, ...)`` tensors.
        mask: ``(B,)`` bool.

    >>> s = LIFState(torch.ones(2, 1), torch.ones(2, 1))
    >>> reset_state(s, torch.tensor([True, False])).v.flatten().tolist()
    [0.0, 1.0]
    """
    if mask.dtype != torch.bool or mask.dim() != 1:
        raise ValueError(f"reset mask must be a (B,) bool tensor, got {tuple(mask.shape)} {mask.dtype}")

    def reset(t: Tensor) -> Tensor:
        if t.shape[0] != mask.shape[0]:
            raise ValueError(f"reset mask has {mask.shape[0]} samples but a state tensor has batch {t.shape[0]}")
        return t.masked_fill(mask.view(-1, *([1] * (t.dim() - 1))), 0)

    return map_state(reset, state)
