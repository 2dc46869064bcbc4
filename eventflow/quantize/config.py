"""Typed quantisation settings (:class:`QuantConfig`), validated like every config of the package.

>>> cfg = QuantConfig(bits=6, weight_bits=4)
>>> cfg.widths()
BitWidths(weight=4, activation=6, state=6, leak=6)
>>> QuantConfig(bits=12)
Traceback (most recent call last):
...
ValueError: QuantConfig: weight bits must be between 2 and 8, got 12
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from eventflow.quantize.fixed_point import MAX_BITS, MIN_BITS

MAX_WEIGHT_BITS = 8


class BitWidths(NamedTuple):
    """The resolved widths: ``weight`` (convolutions), ``activation`` (layer inputs, currents, gate outputs),
    ``state`` (membrane potential and threshold, GRU hidden state), ``leak`` (the LIF ``beta``)."""

    weight: int
    activation: int
    state: int
    leak: int


@dataclass(frozen=True)
class QuantConfig:
    """How to quantise a model.

    - ``bits``: the width of everything not set below (8, 6 and 4 are the swept values);
    - ``weight_bits`` (2 to 8, per-channel symmetric), ``activation_bits``, ``state_bits``, ``leak_bits``
      (2 to 16): override ``bits`` for one kind of tensor (:class:`BitWidths`);
    - ``requantize_output``: round the prediction layers' pre-activation onto an ``activation_bits`` grid before
      the tanh; False (default) dequantises their int32 accumulator directly, as int8 deployments usually keep
      the last layer's output wide;
    - ``method``: how calibrated samples become a grid: ``"mse"`` (default: the grid with the least squared
      error on the sampled non-zero values, :func:`~eventflow.quantize.fixed_point.mse_format`), or the grid
      that holds their ``"percentile"`` (``percentile``: which one, 99.99) or their ``"max"``;
    - ``calibration_windows``: forward passes of calibration on the training split.
    """

    bits: int = 8
    weight_bits: int | None = None
    activation_bits: int | None = None
    state_bits: int | None = None
    leak_bits: int | None = None
    requantize_output: bool = False
    method: Literal["mse", "max", "percentile"] = "mse"
    percentile: float = 99.99
    calibration_windows: int = 100

    def __post_init__(self):
        widths = self.widths()
        if not MIN_BITS <= widths.weight <= MAX_WEIGHT_BITS:
            raise ValueError(f"QuantConfig: weight bits must be between {MIN_BITS} and {MAX_WEIGHT_BITS}, "
                             f"got {widths.weight}")
        for name, value in widths._asdict().items():
            if not MIN_BITS <= value <= MAX_BITS:
                raise ValueError(f"QuantConfig: {name} bits must be between {MIN_BITS} and {MAX_BITS}, got {value}")
        if self.method not in ("mse", "max", "percentile"):
            raise ValueError(f"QuantConfig: method must be 'mse', 'max' or 'percentile', got {self.method!r}")
        if not 0 < self.percentile <= 100:
            raise ValueError(f"QuantConfig: percentile must be in (0, 100], got {self.percentile}")
        if self.calibration_windows < 1:
            raise ValueError(f"QuantConfig: calibration_windows must be positive, got {self.calibration_windows}")

    def widths(self) -> BitWidths:
        """The widths with ``bits`` filled in."""
        def pick(value: int | None) -> int:
            return self.bits if value is None else value

        return BitWidths(pick(self.weight_bits), pick(self.activation_bits), pick(self.state_bits),
                         pick(self.leak_bits))
