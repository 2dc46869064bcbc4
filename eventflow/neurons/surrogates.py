"""Spike functions: a Heaviside step forward, a surrogate derivative backward.

A spiking neuron emits ``z = H(x)`` with ``x = v - theta`` (membrane potential minus threshold) and the strict
step ``H(x) = 1 if x > 0 else 0`` (Hagenaars et al., NeurIPS 2021). ``H`` has no useful derivative, so
the backward pass replaces ``dH/dx`` with a smooth surrogate ``s(x; w)`` of width parameter ``w``:

=============  ==================================================================  ==============================
name           surrogate derivative ``s(x; w)``                                     source
=============  ==================================================================  ==============================
``arctan``     ``1 / (1 + w x^2)`` (the paper's choice, ``w = 10``)                 Fang et al., ICCV 2021
``superspike`` ``1 / (1 + w |x|)^2``                                                Zenke & Ganguli, 2018
``triangle``   ``max(0, 1 - w |x|)``                                                Bellec et al., 2020
``multigauss`` ``1.15 N(x; 0, w) - 0.15 N(x; w, 6w) - 0.15 N(x; -w, 6w)``           Yin et al., 2021
=============  ==================================================================  ==============================

``N(x; mu, sigma)`` is the normal density. The reference implementation's names ``arctanspike``,
``trianglespike`` and ``mgspike`` are accepted as aliases (:data:`SURROGATES`). Note that the reference cells
always pass their ``act_width`` (default 10) as ``w``, whatever the surrogate.

>>> import torch
>>> x = torch.tensor([-0.5, 0.0, 0.25], requires_grad=True)
>>> z = get_surrogate("arctanspike")(x, 10.0)
>>> z
tensor([0., 0., 1.], grad_fn=<...>)
>>> z.sum().backward()
>>> x.grad  # 1 / (1 + 10 x^2)
tensor([0.2857, 1.0000, 0.6154])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

SpikeFunction = Callable[[Tensor, "Tensor | float"], Tensor]

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def arctan_derivative(x: Tensor, width: Tensor | float) -> Tensor:
    """``s(x) = 1 / (1 + w x^2)``, the derivative of ``arctan(sqrt(w) x) / sqrt(w)``; same shape as ``x``."""
    return 1 / (1 + width * x * x)


def superspike_derivative(x: Tensor, width: Tensor | float) -> Tensor:
    """``s(x) = 1 / (1 + w |x|)^2`` (SuperSpike, Zenke & Ganguli 2018); same shape as ``x``."""
    return 1 / (1 + width * x.abs()) ** 2


def triangle_derivative(x: Tensor, width: Tensor | float) -> Tensor:
    """``s(x) = max(0, 1 - w |x|)`` (Bellec et al. 2020); same shape as ``x``."""
    return torch.relu(1 - width * x.abs())


def _normal_pdf(x: Tensor, mu: Tensor | float, sigma: Tensor | float) -> Tensor:
    return torch.exp(-((x - mu) * (x - mu)) / (2 * sigma * sigma)) / (sigma * _SQRT_2PI)


def multigauss_derivative(x: Tensor, width: Tensor | float) -> Tensor:
    """``s(x) = 1.15 N(x; 0, w) - 0.15 N(x; w, 6w) - 0.15 N(x; -w, 6w)`` (Yin et al. 2021); same shape as ``x``."""
    return (
        1.15 * _normal_pdf(x, 0.0, width)
        - 0.15 * _normal_pdf(x, width, 6 * width)
        - 0.15 * _normal_pdf(x, -width, 6 * width)
    )


class _SurrogateHeaviside(torch.autograd.Function):
    """``H(x)`` forward, ``grad * s(x; w)`` backward; ``derivative`` is one of the ``*_derivative`` functions."""

    @staticmethod
    def forward(ctx, x: Tensor, width: Tensor | float, derivative: Callable) -> Tensor:
        if isinstance(width, Tensor):
            ctx.save_for_backward(x, width)
        else:
            ctx.save_for_backward(x)
            ctx.width = width
        ctx.derivative = derivative
        return x.gt(0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_z: Tensor):
        saved = ctx.saved_tensors
        x = saved[0]
        width = saved[1] if len(saved) > 1 else ctx.width
        return grad_z * ctx.derivative(x, width), None, None


def arctan_spike(x: Tensor, width: Tensor | float = 10.0) -> Tensor:
    """``H(x)`` with the arctan surrogate ``1 / (1 + w x^2)``. ``x = v - theta``, any shape; returns 0/1, same dtype."""
    return _SurrogateHeaviside.apply(x, width, arctan_derivative)


def superspike(x: Tensor, width: Tensor | float = 10.0) -> Tensor:
    """``H(x)`` with the SuperSpike surrogate ``1 / (1 + w |x|)^2``. Any shape; returns 0/1, same dtype."""
    return _SurrogateHeaviside.apply(x, width, superspike_derivative)


def triangle_spike(x: Tensor, width: Tensor | float = 1.0) -> Tensor:
    """``H(x)`` with the triangle surrogate ``max(0, 1 - w |x|)``. Any shape; returns 0/1, same dtype."""
    return _SurrogateHeaviside.apply(x, width, triangle_derivative)


def multigauss_spike(x: Tensor, width: Tensor | float = 0.5) -> Tensor:
    """``H(x)`` with the multi-Gaussian surrogate of Yin et al. (2021). Any shape; returns 0/1, same dtype."""
    return _SurrogateHeaviside.apply(x, width, multigauss_derivative)


#: Canonical surrogate name -> spike function ``f(x, width) -> z``.
CANONICAL_SURROGATES: dict[str, SpikeFunction] = {
    "arctan": arctan_spike,
    "superspike": superspike,
    "triangle": triangle_spike,
    "multigauss": multigauss_spike,
}

#: The reference implementation's names for the same functions.
SURROGATE_ALIASES: dict[str, str] = {"arctanspike": "arctan", "trianglespike": "triangle", "mgspike": "multigauss"}

#: Every accepted name (canonical and reference aliases) -> spike function.
SURROGATES: dict[str, SpikeFunction] = {
    **CANONICAL_SURROGATES,
    **{alias: CANONICAL_SURROGATES[name] for alias, name in SURROGATE_ALIASES.items()},
}


def canonical_surrogate(name: str) -> str:
    """The canonical name of surrogate ``name`` (``"mgspike"`` -> ``"multigauss"``); ValueError listing the
    valid names when it is unknown.

    >>> canonical_surrogate("mgspike")
    'multigauss'
    >>> canonical_surrogate("sigmoid")
    Traceback (most recent call last):
    ...
    ValueError: unknown surrogate 'sigmoid'; valid choices: arctan, superspike, triangle, multigauss, arctanspike, \
trianglespike, mgspike
    """
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; valid choices: {', '.join(SURROGATES)}")
    return SURROGATE_ALIASES.get(name, name)


def get_surrogate(name: str) -> SpikeFunction:
    """The spike function ``f(x, width) -> H(x)`` registered as ``name`` (canonical or reference alias)."""
    return CANONICAL_SURROGATES[canonical_surrogate(name)]
