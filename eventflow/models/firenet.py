"""The FireNet family: full-resolution, stride 1, one chain of layers (Scheerlinck et al., WACV 2020;
Hagenaars et al., NeurIPS 2021).

``head -> G1 -> R1a -> R1b -> G2 -> R2a -> R2b -> pred`` (the derivative's ``_short`` variants drop R1b and R2b):
``head`` and the ``R`` layers are feed-forward, ``G1``, ``G2`` recurrent (GRU, RNN, leaky or spiking recurrent;
feed-forward in the ``FireFlowNet`` models), ``pred`` a 1x1 convolution with tanh. Every layer has C channels
(``base_num_channels``) and k x k kernels. The reference's "residual" option is off in every model, so the R
layers are plain sequential layers. As in the reference, the G layers take the recurrent activation
``activations[1]`` even where they are feed-forward: with the ANN config ``[relu, null]`` FireFlowNet's G1 and G2
are linear convolutions.

The reference builds these layers from one class-level keyword dict shared by every layer and every instance
(a defect: a second model built in the same process inherits the first one's neuron settings). Its effect on a
single model, every neuron layer getting the ``spiking_neuron`` settings, is what :class:`FireNetModel` does.

>>> from eventflow.models import build_model
>>> import torch
>>> model = build_model("LIFFireNet_short", base_num_channels=8)
>>> flow, state = model(torch.zeros(1, 2, 16, 16), model.init_state(1, 16, 16))
>>> flow.shape, model.state_names
(torch.Size([1, 2, 16, 16]), ['head', 'G1', 'R1a', 'G2', 'R2a'])
"""

from __future__ import annotations

from torch import Tensor

from eventflow.models.base import CONV_REFERENCE_RENAMES, FlowModel, LayerSpec, Step
from eventflow.models.config import ModelConfig
from eventflow.models.layers import make_layer
from eventflow.neurons.analog import ConvLayer


class FireNetModel(FlowModel):
    """A FireNet-family model; ``ff_kind``/``rec_kind`` are layer kinds (:data:`~eventflow.models.layers.LAYER_KINDS`)
    of the head and R layers and of the G layers, ``w_scale_pred`` the prediction layer's weight bound (None:
    PyTorch's default initialisation), ``short`` the compact variant without R1b and R2b."""

    def __init__(self, config: ModelConfig, ff_kind: str, rec_kind: str, w_scale_pred: float | None,
                 short: bool = False):
        super().__init__(config)
        c, k, name = config.base_num_channels, config.kernel_size, config.name
        ff_act, rec_act = config.activations
        neuron = config.neuron_overrides()
        # Built in the reference's order, so that equal seeds give equal initial weights.
        self.head = make_layer(ff_kind, config.num_bins, c, k, activation=ff_act, neuron=neuron, model=name)
        self.G1 = make_layer(rec_kind, c, c, k, activation=rec_act, neuron=neuron, model=name)
        self.R1a = make_layer(ff_kind, c, c, k, activation=ff_act, neuron=neuron, model=name)
        if not short:
            self.R1b = make_layer(ff_kind, c, c, k, activation=ff_act, neuron=neuron, model=name)
        self.G2 = make_layer(rec_kind, c, c, k, activation=rec_act, neuron=neuron, model=name)
        self.R2a = make_layer(ff_kind, c, c, k, activation=ff_act, neuron=neuron, model=name)
        if not short:
            self.R2b = make_layer(ff_kind, c, c, k, activation=ff_act, neuron=neuron, model=name)
        self.pred = ConvLayer(c, 2, kernel_size=1, activation="tanh", w_scale=w_scale_pred)

        self.chain = ["head", "G1", "R1a", "G2", "R2a"] if short else ["head", "G1", "R1a", "R1b", "G2", "R2a", "R2b"]
        specs = [LayerSpec(n, n, CONV_REFERENCE_RENAMES if isinstance(getattr(self, n), ConvLayer) else {})
                 for n in [*self.chain, "pred"]]
        self._set_layers(specs)

    def _state_grids(self, height: int, width: int) -> dict[str, tuple[int, int]]:
        return {name: (height, width) for name in self.state_names}

    def _forward_layers(self, x: Tensor, step: Step) -> list[Tensor]:
        for name in self.chain:
            x = step(name, x)  # (B, C, H, W)
        return [step("pred", x)]  # [(B, 2, H, W)]
