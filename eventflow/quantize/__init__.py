"""Quantisation of the flow models for low-power deployment: fixed-point spiking neurons, int8 convolutions.

Two methods, both on every convolution (per-channel symmetric weights), every layer input and current, and the
neuron state (membrane potential, leak and threshold in fixed point with calibrated per-layer formats):

- post-training quantisation, :func:`ptq`, with formats calibrated on the training split only
  (:func:`calibrate_on_training_split`, which records the files it read);
- quantisation-aware training, :func:`qat`: the same model fine-tuned through straight-through fake quantisers
  with the paper's training loop.

Bit widths are configurable (:class:`QuantConfig`: 8, 6 and 4 bits are swept) and BatchNorms are folded
(:func:`fold_batchnorm`). The fixed-point LIF (:func:`fixed_point_lif_step`) is the float LIF update of
:mod:`eventflow.neurons` evaluated on the quantisation grids.

Submodules: :mod:`.fixed_point` (formats, quantisers), :mod:`.lif` (the fixed-point neuron), :mod:`.layers`
(quantised twins of the layers, the integer convolution), :mod:`.calibrate`, :mod:`.model` (PTQ, checkpoints,
sizes), :mod:`.qat`, :mod:`.bn`; imported on use: :mod:`.onnx_int8` (integer ONNX export, onnxruntime runner) and
:mod:`.sweep` (the bit-width sweep of the study).

>>> import torch
>>> from eventflow.models import build_model
>>> model = build_model("LIFFireNet_short", base_num_channels=4)
>>> qmodel = quantize_model(model, default_model_formats(model, QuantConfig(bits=4)))  # uncalibrated formats
>>> flow, state = qmodel(torch.ones(1, 2, 8, 8))
>>> qmodel.layers()["head"].formats.v
FixedPoint(bits=4, frac=1, signed=True)
"""

from eventflow.quantize.bn import fold_batchnorm, fold_conv_batchnorm
from eventflow.quantize.calibrate import Calibration, TensorStats, calibrate, calibrate_on_training_split
from eventflow.quantize.config import BitWidths, QuantConfig
from eventflow.quantize.fixed_point import FixedPoint, choose_format, fake_quantize
from eventflow.quantize.layers import ConvFormats, GRUFormats, LIFLayerFormats
from eventflow.quantize.lif import LIFFormats, fixed_point_lif_step
from eventflow.quantize.model import (
    ModelSize,
    QuantInfo,
    default_formats,
    default_model_formats,
    float_model,
    formats_from_calibration,
    formats_table,
    integer_state_dict,
    is_quantized,
    load_quantized,
    model_formats,
    model_size,
    ptq,
    quantize_model,
    save_quantized,
)
from eventflow.quantize.qat import FinetuneResult, finetune, qat

__all__ = [
    "BitWidths",
    "Calibration",
    "ConvFormats",
    "FinetuneResult",
    "FixedPoint",
    "GRUFormats",
    "LIFFormats",
    "LIFLayerFormats",
    "ModelSize",
    "QuantConfig",
    "QuantInfo",
    "TensorStats",
    "calibrate",
    "calibrate_on_training_split",
    "choose_format",
    "default_formats",
    "default_model_formats",
    "fake_quantize",
    "finetune",
    "fixed_point_lif_step",
    "float_model",
    "formats_table",
    "fold_batchnorm",
    "fold_conv_batchnorm",
    "formats_from_calibration",
    "integer_state_dict",
    "is_quantized",
    "load_quantized",
    "model_formats",
    "model_size",
    "ptq",
    "qat",
    "quantize_model",
    "save_quantized",
]
