"""Neurons of Hagenaars et al. (NeurIPS 2021): functional steps with explicit state, and thin layer modules.

- :mod:`.surrogates`: the Heaviside spike with surrogate gradients (arctan, SuperSpike, triangle, multi-Gaussian);
- :mod:`.functional`: ``lif_step``, ``plif_step``, ``alif_step``, ``xlif_step``, ``leaky_step``, their
  NamedTuple states and parameters, ``reset_state`` and ``detach_state``;
- :mod:`.modules`: convolutional spiking layers (``ConvLIF``, ``ConvLIFRecurrent``, PLIF, ALIF, XLIF);
- :mod:`.analog`: the ANN baselines' layers (``ConvLayer``, ``ConvGRU``, ``ConvRNN``, ``ConvLeaky``,
  ``ConvLeakyRecurrent``).
"""

from eventflow.neurons.analog import (
    ConvGRU,
    ConvLayer,
    ConvLeaky,
    ConvLeakyRecurrent,
    ConvRNN,
    GRUState,
    RNNState,
)
from eventflow.neurons.functional import (
    LIF_BACKENDS,
    ALIFParameters,
    ALIFState,
    LeakyState,
    LIFParameters,
    LIFState,
    PLIFParameters,
    PLIFState,
    XLIFParameters,
    XLIFState,
    alif_step,
    detach_state,
    leaky_step,
    lif_step,
    lif_update_torch,
    plif_step,
    presynaptic_activity,
    register_lif_backend,
    reset_state,
    xlif_step,
)
from eventflow.neurons.modules import (
    ConvALIF,
    ConvALIFRecurrent,
    ConvLIF,
    ConvLIFRecurrent,
    ConvPLIF,
    ConvPLIFRecurrent,
    ConvXLIF,
    ConvXLIFRecurrent,
)
from eventflow.neurons.surrogates import SURROGATES, get_surrogate

__all__ = [
    "ALIFParameters",
    "ALIFState",
    "ConvALIF",
    "ConvALIFRecurrent",
    "ConvGRU",
    "ConvLIF",
    "ConvLIFRecurrent",
    "ConvLayer",
    "ConvLeaky",
    "ConvLeakyRecurrent",
    "ConvPLIF",
    "ConvPLIFRecurrent",
    "ConvRNN",
    "ConvXLIF",
    "ConvXLIFRecurrent",
    "GRUState",
    "LIFParameters",
    "LIFState",
    "LIF_BACKENDS",
    "LeakyState",
    "PLIFParameters",
    "PLIFState",
    "RNNState",
    "SURROGATES",
    "XLIFParameters",
    "XLIFState",
    "alif_step",
    "detach_state",
    "get_surrogate",
    "leaky_step",
    "lif_step",
    "lif_update_torch",
    "plif_step",
    "presynaptic_activity",
    "register_lif_backend",
    "reset_state",
    "xlif_step",
]
