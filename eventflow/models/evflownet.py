"""The EV-FlowNet family: a U-Net with multi-resolution predictions (Zhu et al., RSS 2018; Hagenaars et al.,
NeurIPS 2021).

With C = ``base_num_channels``:

- 4 encoders, k x k convolutions with stride 2: ``num_bins -> 2C -> 4C -> 8C -> 16C``; in the recurrent models each
  encoder is followed by a recurrent layer at its output (ConvGRU or ConvRNN with 3x3 kernels; leaky or spiking
  recurrent with k x k kernels);
- 2 residual blocks at 16C: two 3x3 layers, the block input added to the second (before its activation in the
  ANNs, to its spikes in the SNNs, to its input current in the leaky models);
- 4 decoders: bilinear x2 upsampling then a k x k layer, input = concatenation ``[previous prediction (from the
  second decoder on), features, skip]``, output ``8C, 4C, 2C, C``;
- a 1x1 tanh prediction after each decoder, at H/8, H/4, H/2 and H.

The network needs H and W divisible by 16. ``pad_input=True`` zero-pads the input to the next multiple of 16,
centred (the extra pixel of an odd difference on the top/left), and crops the flows back, as the reference's
``CropParameters`` does; otherwise other sizes are an error. (The reference run without cropping silently shifts
its skip connections by a pixel instead.)

>>> from eventflow.models import build_model
>>> import torch
>>> model = build_model("SpikingRecEVFlowNet", base_num_channels=2)
>>> out, state = model.forward_all(torch.zeros(1, 2, 32, 32))
>>> [tuple(f.shape) for f in out.flow_scales]
[(1, 2, 32, 32), (1, 2, 32, 32), (1, 2, 32, 32), (1, 2, 32, 32)]
>>> model.init_state(1, 30, 32)
Traceback (most recent call last):
...
ValueError: SpikingRecEVFlowNet needs H and W divisible by 16, got 30x32; set pad_input=True to pad and crop \
as the reference CropParameters
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventflow.models.base import CONV_REFERENCE_RENAMES, FlowModel, LayerSpec, Step
from eventflow.models.config import ModelConfig
from eventflow.models.layers import make_layer
from eventflow.neurons.analog import ConvLayer

NUM_ENCODERS = 4
NUM_RESIDUAL_BLOCKS = 2
MULTIPLE = 2**NUM_ENCODERS
RESIDUAL_KERNEL = 3
# The reference's ANN ResidualBlock holds bare convolutions: conv1.weight rather than conv1.conv2d.weight.
_BARE_CONV_RENAMES = {"conv.weight": "weight", "conv.bias": "bias"}


def centred_padding(size: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """``(before, after)`` zero padding that takes ``size`` to the next multiple of ``multiple``, the odd pixel
    before (reference ``CropParameters``: ``ceil`` of half the difference before, ``floor`` after).

    >>> centred_padding(180), centred_padding(240), centred_padding(179)
    ((6, 6), (0, 0), (7, 6))
    """
    diff = multiple * math.ceil(size / multiple) - size
    return math.ceil(diff / 2), diff // 2


class EVFlowNetModel(FlowModel):
    """An EV-FlowNet-family model; ``ff_kind`` is the layer kind of encoders, residual blocks and decoders,
    ``rec_kind`` that of the recurrent layer after each encoder (None: feed-forward EV-FlowNet),
    ``rec_kernel`` its kernel size (None: ``kernel_size``), ``w_scale_pred`` the prediction layers' weight
    bound (None: PyTorch's default)."""

    def __init__(self, config: ModelConfig, ff_kind: str, rec_kind: str | None, w_scale_pred: float | None,
                 rec_kernel: int | None = None):
        super().__init__(config)
        c, k, name = config.base_num_channels, config.kernel_size, config.name
        ff_act, rec_act = config.activations
        neuron = config.neuron_overrides()
        enc_in = [config.num_bins] + [c * 2**i for i in range(1, NUM_ENCODERS)]  # num_bins, 2C, 4C, 8C
        enc_out = [c * 2 ** (i + 1) for i in range(NUM_ENCODERS)]  # 2C, 4C, 8C, 16C
        root = "multires_unet" if rec_kind is None else "multires_unetrec"

        # Built in the reference's order, so that equal seeds give equal initial weights.
        self.encoders, self.recurrent = nn.ModuleList(), nn.ModuleList()
        specs = []
        for i, (cin, cout) in enumerate(zip(enc_in, enc_out)):
            self.encoders.append(make_layer(ff_kind, cin, cout, k, stride=2, activation=ff_act, neuron=neuron,
                                            model=name))
            ref = f"{root}.encoders.{i}" if rec_kind is None else f"{root}.encoders.{i}.conv"
            specs.append(LayerSpec(f"encoders.{i}", ref, self._renames(ff_kind)))
            if rec_kind is not None:
                self.recurrent.append(make_layer(rec_kind, cout, cout, rec_kernel or k, activation=rec_act,
                                                 neuron=neuron, model=name))
                specs.append(LayerSpec(f"recurrent.{i}", f"{root}.encoders.{i}.recurrent_block", {}))

        self.resblocks = nn.ModuleList()
        for i in range(NUM_RESIDUAL_BLOCKS):
            block = nn.ModuleDict()
            for j in (1, 2):
                block[f"conv{j}"] = make_layer(ff_kind, enc_out[-1], enc_out[-1], RESIDUAL_KERNEL,
                                               activation=ff_act, neuron=neuron, model=name)
                renames = _BARE_CONV_RENAMES if ff_kind == "conv" else {}
                specs.append(LayerSpec(f"resblocks.{i}.conv{j}", f"{root}.resblocks.{i}.conv{j}", renames))
            self.resblocks.append(block)

        self.decoders = nn.ModuleList()
        for i in range(NUM_ENCODERS):
            cin = 2 * enc_out[NUM_ENCODERS - 1 - i] + (0 if i == 0 else 2)  # features, skip (, prediction)
            cout = c * 2 ** (NUM_ENCODERS - 1 - i)  # 8C, 4C, 2C, C
            self.decoders.append(make_layer(ff_kind, cin, cout, k, activation=ff_act, neuron=neuron, model=name))
        self.preds = nn.ModuleList()
        for i in range(NUM_ENCODERS):
            cout = c * 2 ** (NUM_ENCODERS - 1 - i)
            self.preds.append(ConvLayer(cout, 2, kernel_size=1, activation="tanh", w_scale=w_scale_pred))
        for i in range(NUM_ENCODERS):
            # the reference wraps a spiking or leaky decoder layer in an upsampling module, as "conv2d"
            ref = f"{root}.decoders.{i}" + ("" if ff_kind == "conv" else ".conv2d")
            specs.append(LayerSpec(f"decoders.{i}", ref, self._renames(ff_kind)))
            specs.append(LayerSpec(f"preds.{i}", f"{root}.preds.{i}", CONV_REFERENCE_RENAMES))
        self._set_layers(specs)

    @staticmethod
    def _renames(kind: str) -> dict[str, str]:
        return CONV_REFERENCE_RENAMES if kind == "conv" else {}

    # ------------------------------------------------------------------------------------------------ sizes

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(H, W)`` the network runs at: the input size, or with ``pad_input`` the next multiples of 16."""
        if self.config.pad_input:
            return height + sum(centred_padding(height)), width + sum(centred_padding(width))
        if height % MULTIPLE or width % MULTIPLE:
            raise ValueError(f"{self.config.name} needs H and W divisible by {MULTIPLE}, got {height}x{width}; "
                             "set pad_input=True to pad and crop as the reference CropParameters")
        return height, width

    def _state_grids(self, height: int, width: int) -> dict[str, tuple[int, int]]:
        h, w = self.padded_size(height, width)
        grids = {}
        for i in range(NUM_ENCODERS):
            grids[f"encoders.{i}"] = grids[f"recurrent.{i}"] = (h >> (i + 1), w >> (i + 1))
            grids[f"decoders.{i}"] = (h >> (NUM_ENCODERS - 1 - i), w >> (NUM_ENCODERS - 1 - i))
        for i in range(NUM_RESIDUAL_BLOCKS):
            grids[f"resblocks.{i}.conv1"] = grids[f"resblocks.{i}.conv2"] = (h >> NUM_ENCODERS, w >> NUM_ENCODERS)
        return grids

    def _prepare(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        self.padded_size(height, width)  # validates
        if not self.config.pad_input:
            return x
        top, bottom = centred_padding(height)
        left, right = centred_padding(width)
        return F.pad(x, (left, right, top, bottom))

    def _finish(self, preds: list[Tensor], input_size: tuple[int, int], all_scales: bool) -> list[Tensor]:
        full = preds[-1].shape[-2:]
        if all_scales:
            # nearest upsampling by the scale ratio, exactly as the reference
            flows = [F.interpolate(p, scale_factor=(full[0] / p.shape[2], full[1] / p.shape[3])) for p in preds]
        else:
            flows = preds[-1:]
        if not self.config.pad_input:
            return flows
        (height, width), top, left = input_size, centred_padding(input_size[0])[0], centred_padding(input_size[1])[0]
        return [f[:, :, top:top + height, left:left + width].contiguous() for f in flows]

    # ------------------------------------------------------------------------------------------------ topology

    def _forward_layers(self, x: Tensor, step: Step) -> list[Tensor]:
        skips = []
        for i in range(NUM_ENCODERS):
            x = step(f"encoders.{i}", x)  # (B, 2^(i+1) C, H / 2^(i+1), W / 2^(i+1))
            if self.recurrent:
                x = step(f"recurrent.{i}", x)
            skips.append(x)
        for i in range(NUM_RESIDUAL_BLOCKS):
            x = step(f"resblocks.{i}.conv2", step(f"resblocks.{i}.conv1", x), residual=x)  # (B, 16C, H/16, W/16)
        preds: list[Tensor] = []
        for i in range(NUM_ENCODERS):
            x = torch.cat([x, skips[NUM_ENCODERS - 1 - i]], dim=1)
            if preds:
                x = torch.cat([preds[-1], x], dim=1)
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = step(f"decoders.{i}", x)  # (B, 2^(3-i) C, H / 2^(3-i), W / 2^(3-i))
            preds.append(step(f"preds.{i}", x))  # (B, 2, H / 2^(3-i), W / 2^(3-i))
        return preds
