"""Fixed-point formats and the quantisers built on them (forward: the integer grid; backward: straight-through).

A tensor in the fixed-point format ``Q(bits, frac)`` holds integers ``q`` in ``[qmin, qmax]`` that stand for the
values ``q * 2^-frac`` (``frac`` fractional bits; a negative ``frac`` gives steps larger than one). Signed formats
use the full two's-complement range ``[-2^(bits-1), 2^(bits-1) - 1]``, unsigned ones ``[0, 2^bits - 1]``. Scales
are powers of two, so rescaling between formats is a shift and the PyTorch simulation (float32 tensors that hold
grid values), an integer device and the ONNX graph compute the same numbers (see :mod:`eventflow.quantize.lif`).

Quantisation rounds half to even (``torch.round``, ONNX ``Round``/``QuantizeLinear``) and saturates:

    Q(x) = clamp(round(x * 2^frac), qmin, qmax) * 2^-frac

Convolution weights use a per-output-channel symmetric scale instead (:func:`weight_scale`),
``s_c = r_c max|W_c| / (2^(bits-1) - 1)`` (Krishnamoorthi 2018; Jacob et al., CVPR 2018), the clipping ratio
``r_c <= 1`` minimising the channel's squared error. Calibrated ranges become formats by :func:`choose_format`
(hold a range) or :func:`mse_format` (minimise the squared error on samples). Gradients pass the rounding
unchanged (straight-through estimator, Bengio et al. 2013) and are zero where the value saturates.

>>> import torch
>>> fmt = choose_format(absmax=0.9, bits=8)          # 0.9 * 2^7 = 115 <= 127, 0.9 * 2^8 > 127
>>> fmt, fmt.scale
(FixedPoint(bits=8, frac=7, signed=True), 0.0078125)
>>> fake_quantize(torch.tensor([0.5, 0.00390625, 3.0]), fmt).tolist()   # 0.5 exact, a tie to even, saturation
[0.5, 0.0, 0.9921875]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class FixedPoint(NamedTuple):
    """A fixed-point format: ``bits`` wide, ``frac`` fractional bits (step ``2^-frac``), signed or not."""

    bits: int
    frac: int
    signed: bool = True

    @property
    def qmin(self) -> int:
        """Smallest integer of the format."""
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        """Largest integer of the format."""
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def scale(self) -> float:
        """The step ``2^-frac``."""
        return 2.0 ** -self.frac

    @property
    def max_value(self) -> float:
        """The largest representable value ``qmax * 2^-frac``."""
        return self.qmax * self.scale

    def to_dict(self) -> dict[str, int | bool]:
        return {"bits": self.bits, "frac": self.frac, "signed": self.signed}

    @classmethod
    def from_dict(cls, data: dict) -> FixedPoint:
        """Inverse of :meth:`to_dict`; ValueError on missing or wrong keys."""
        if set(data) != {"bits", "frac", "signed"}:
            raise ValueError(f"a fixed-point format has the keys bits, frac, signed; got {sorted(data)}")
        return check_format(cls(int(data["bits"]), int(data["frac"]), bool(data["signed"])))


#: Bit widths a format may have (an integer device stores up to 16-bit state; weights 2 to 8 bits).
MIN_BITS, MAX_BITS = 2, 16


def check_format(fmt: FixedPoint) -> FixedPoint:
    """``fmt`` if its width is within ``[MIN_BITS, MAX_BITS]``, else ValueError."""
    if not MIN_BITS <= fmt.bits <= MAX_BITS:
        raise ValueError(f"fixed-point formats have {MIN_BITS} to {MAX_BITS} bits, got {fmt.bits}")
    return fmt


def choose_format(absmax: float, bits: int, signed: bool = True, integer: bool = False) -> FixedPoint:
    """The finest format of ``bits`` that holds ``[-absmax, absmax]`` (``[0, absmax]`` unsigned) unsaturated:
    the largest ``frac`` with ``absmax * 2^frac <= qmax``.

    ``integer=True`` (data that only takes whole values: event counts, spikes) caps ``frac`` at 0, so the grid
    keeps every whole number exactly. ``absmax <= 0`` (a tensor never seen non-zero) gives ``frac = 0``.

    >>> choose_format(1.0, 4), choose_format(100.0, 8, integer=True), choose_format(0.03, 8, signed=False)
    (FixedPoint(bits=4, frac=2, signed=True), FixedPoint(bits=8, frac=0, signed=True), \
FixedPoint(bits=8, frac=13, signed=False))
    """
    fmt = check_format(FixedPoint(bits, 0, signed))
    if not math.isfinite(absmax):
        raise ValueError(f"cannot choose a fixed-point format for a non-finite range {absmax}")
    if absmax <= 0:
        return fmt
    frac = math.floor(math.log2(fmt.qmax / absmax))
    while absmax * 2.0**frac > fmt.qmax:  # guard the floating-point log2 at exact powers of two
        frac -= 1
    while absmax * 2.0 ** (frac + 1) <= fmt.qmax:
        frac += 1
    if integer:
        frac = min(frac, 0)
    return FixedPoint(bits, frac, signed)


def mse_format(samples: Tensor, bits: int, signed: bool = True, shrink: int = 8) -> FixedPoint:
    """The format of ``bits`` that minimises the mean squared quantisation error of ``samples`` (magnitudes or
    values; rounding plus saturation), among the format that holds their largest magnitude unsaturated
    (:func:`choose_format`) and the ``shrink`` finer ones (MSE range setting, Nagel et al. 2021, Sec. 3.4).

    >>> x = torch.cat([torch.linspace(0.0, 1.0, 1000), torch.tensor([10.0])])  # a bulk and one outlier
    >>> choose_format(10.0, 4), mse_format(x, 4)
    (FixedPoint(bits=4, frac=-1, signed=True), FixedPoint(bits=4, frac=1, signed=True))
    """
    samples = samples.detach().float().flatten()
    base = choose_format(float(samples.abs().max()) if samples.numel() else 0.0, bits, signed)
    if samples.numel() == 0:
        return base
    candidates = [FixedPoint(bits, base.frac + k, signed) for k in range(shrink + 1)]
    errors = [float((fake_quantize(samples, fmt) - samples).square().mean()) for fmt in candidates]
    return candidates[min(range(len(errors)), key=errors.__getitem__)]


class _QuantizeSTE(torch.autograd.Function):
    """``clamp(round(x), qmin, qmax)`` forward; backward passes the gradient where ``qmin <= round(x) <= qmax``
    (saving a boolean mask only, so quantisation-aware training keeps its memory close to float training)."""

    @staticmethod
    def forward(ctx, x: Tensor, qmin: int, qmax: int) -> Tensor:
        rounded = torch.round(x)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward((rounded >= qmin) & (rounded <= qmax))
        return rounded.clamp_(qmin, qmax)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


def quantize_integer(x: Tensor, qmin: int, qmax: int) -> Tensor:
    """``clamp(round(x), qmin, qmax)`` with a straight-through gradient inside ``[qmin, qmax]`` (zero outside);
    integer values in the dtype of ``x``."""
    return _QuantizeSTE.apply(x, qmin, qmax)


def to_integer(x: Tensor, fmt: FixedPoint) -> Tensor:
    """The integers ``clamp(round(x * 2^frac), qmin, qmax)`` of ``x`` in ``fmt`` (same dtype, STE gradient)."""
    return quantize_integer(x * 2.0**fmt.frac, fmt.qmin, fmt.qmax)


def fake_quantize(x: Tensor, fmt: FixedPoint) -> Tensor:
    """``Q(x)``: ``x`` rounded (half to even) and saturated onto the grid of ``fmt``, as values (same dtype and
    shape); straight-through gradient, zero where saturated. Idempotent: grid values pass unchanged."""
    return to_integer(x, fmt) * fmt.scale


#: Clipping ratios tried by :func:`weight_scale`: the clip range is ``ratio * max|W_c|``.
CLIP_RATIOS = tuple(round(1.0 - 0.05 * k, 2) for k in range(11))  # 1.0, 0.95, ..., 0.5


def weight_scale(weight: Tensor, bits: int) -> Tensor:
    """Per-output-channel symmetric scale of ``weight`` ``(C_out, ...)`` as a detached float32 tensor
    ``(C_out,)``: ``s_c = r_c max|W_c| / (2^(bits-1) - 1)`` with the ratio ``r_c`` of :data:`CLIP_RATIOS` that
    minimises the channel's squared quantisation error (rounding plus clipping; MSE range setting, Nagel et al.
    2021, "A white paper on neural network quantization", Sec. 3.4). Wide formats keep ``r = 1`` (the largest
    weight exact); narrow ones clip a few outliers to resolve the bulk. An all-zero channel gets 1.

    >>> w = torch.cat([torch.tensor([1.0]), torch.full((100,), 0.2)]).view(1, -1)  # one outlier
    >>> round(float(weight_scale(w, 8)) * 127, 3), round(float(weight_scale(w, 3)) * 3, 3)  # 3 bits: clip at 0.65
    (1.0, 0.65)
    """
    qmax = 2 ** (bits - 1) - 1
    flat = weight.detach().flatten(1).to(torch.float32)  # (C_out, K)
    absmax = flat.abs().amax(dim=1)  # (C_out,)
    ratios = torch.tensor(CLIP_RATIOS, dtype=torch.float32, device=flat.device)
    scales = ratios.view(-1, 1) * absmax / qmax  # (R, C_out)
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.clamp(torch.round(flat / safe.unsqueeze(-1)), -qmax, qmax) * safe.unsqueeze(-1)  # (R, C_out, K)
    error = (q - flat).square().sum(dim=-1)  # (R, C_out)
    best = scales.gather(0, error.argmin(dim=0, keepdim=True)).squeeze(0)  # first minimum: the widest range
    return torch.where(absmax > 0, best, torch.ones_like(absmax))


def quantize_weight(weight: Tensor, scale: Tensor, bits: int) -> Tensor:
    """The integer weights ``clamp(round(W / s_c), -qmax, qmax)`` (symmetric, narrow range) for per-channel
    scales ``scale`` ``(C_out,)``; straight-through gradient to ``weight``. Same shape and dtype as ``weight``."""
    qmax = 2 ** (bits - 1) - 1
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return quantize_integer(weight / scale.to(weight.dtype).view(shape), -qmax, qmax)
