"""Layer kinds of the model zoo and the factory that builds one from the model config.

A model names its layers by kind (:data:`LAYER_KINDS`); :func:`make_layer` passes each kind the arguments it
takes: spiking kinds take a surrogate name as activation and the ``spiking_neuron`` settings; leaky kinds take
the leak settings; the GRU and RNN take neither. The reference hands every layer of a model the same
``spiking_neuron`` keyword arguments, so a key that a layer does not take is an error here too (with a message).

>>> layer = make_layer("lif_rec", 2, 8, 3, activation="arctanspike", neuron={"thresh": (0.8, 0.1)}, model="demo")
>>> type(layer).__name__, layer.surrogate
('ConvLIFRecurrent', 'arctanspike')
>>> make_layer("alif", 2, 8, 3, activation="arctanspike", neuron={"thresh": (0.8, 0.1)}, model="ALIFFireNet")
Traceback (most recent call last):
...
ValueError: ALIFFireNet: spiking_neuron.thresh does not apply to ConvALIF layers; their keys: act_width, leak_v, \
leak_t, t0, t1, learn_leak, learn_thresh, hard_reset, detach
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from eventflow.neurons.analog import ConvGRU, ConvLayer, ConvLeaky, ConvLeakyRecurrent, ConvRNN, get_activation
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
from eventflow.neurons.surrogates import canonical_surrogate

#: kind -> layer class. "conv" is stateless; "gru", "rnn" are the ANN recurrent cells; "leaky*" the stateful
#: non-spiking cells; the rest spiking (``*_rec``: with a recurrent convolution of the layer's own spikes).
LAYER_KINDS: dict[str, type[nn.Module]] = {
    "conv": ConvLayer,
    "gru": ConvGRU,
    "rnn": ConvRNN,
    "leaky": ConvLeaky,
    "leaky_rec": ConvLeakyRecurrent,
    "lif": ConvLIF,
    "lif_rec": ConvLIFRecurrent,
    "plif": ConvPLIF,
    "plif_rec": ConvPLIFRecurrent,
    "alif": ConvALIF,
    "alif_rec": ConvALIFRecurrent,
    "xlif": ConvXLIF,
    "xlif_rec": ConvXLIFRecurrent,
}

SPIKING_KINDS = frozenset(k for k, cls in LAYER_KINDS.items() if getattr(cls, "spiking", False))
_NO_ACTIVATION_KINDS = frozenset({"gru", "rnn", "leaky_rec"})
_NO_NEURON_KINDS = frozenset({"conv", "gru", "rnn"})
_STRUCTURAL_ARGS = frozenset({"self", "in_channels", "out_channels", "hidden_channels", "kernel_size", "stride",
                              "surrogate", "activation", "backend", "w_scale"})


def neuron_keys(kind: str) -> list[str]:
    """The ``spiking_neuron`` keys that layers of ``kind`` take (from their constructor signature)."""
    params = inspect.signature(LAYER_KINDS[kind].__init__).parameters
    return [name for name in params if name not in _STRUCTURAL_ARGS]


def make_layer(kind: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               activation: str | None = None, neuron: dict[str, Any] | None = None, w_scale: float | None = None,
               model: str = "model") -> nn.Module:
    """Build one layer of ``kind`` (a key of :data:`LAYER_KINDS`).

    Args:
        in_channels, out_channels, kernel_size, stride: the convolution (stride only for feed-forward kinds).
        activation: surrogate name for spiking kinds; activation name or None for "conv" and "leaky"; must be
            None for "gru", "rnn" and "leaky_rec" (they have fixed nonlinearities).
        neuron: ``spiking_neuron`` settings (:meth:`~eventflow.models.config.NeuronConfig.overrides`).
        w_scale: "conv" only: uniform weight bound (and zero bias), as the reference prediction layers.
        model: the model name, for error messages.
    """
    if kind not in LAYER_KINDS:
        raise ValueError(f"{model}: unknown layer kind {kind!r}; valid choices: {', '.join(LAYER_KINDS)}")
    cls = LAYER_KINDS[kind]
    neuron = dict(neuron or {})
    if neuron and kind in _NO_NEURON_KINDS:
        raise ValueError(f"{model}: {cls.__name__} layers take no spiking_neuron settings, got "
                         f"{', '.join(sorted(neuron))}; set spiking_neuron to null")
    valid = neuron_keys(kind)
    for key in neuron:
        if key not in valid:
            raise ValueError(f"{model}: spiking_neuron.{key} does not apply to {cls.__name__} layers; their keys: "
                             f"{', '.join(valid)}")
    if kind in _NO_ACTIVATION_KINDS:
        if activation is not None:
            raise ValueError(f"{model}: {cls.__name__} layers have a fixed nonlinearity; their activation must be "
                             f"null, got {activation!r}")
        return cls(in_channels, out_channels, kernel_size, **neuron)
    if kind in SPIKING_KINDS:
        if activation is None:
            raise ValueError(f"{model}: spiking layers need a surrogate name as activation (e.g. 'arctanspike')")
        canonical_surrogate(activation)
        return cls(in_channels, out_channels, kernel_size, stride, surrogate=activation, **neuron)
    get_activation(activation)
    if kind == "conv":
        return ConvLayer(in_channels, out_channels, kernel_size, stride, activation=activation, w_scale=w_scale)
    return cls(in_channels, out_channels, kernel_size, stride, activation=activation, **neuron)
