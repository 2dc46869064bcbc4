"""eventflow: spiking neural networks for self-supervised event-based optical flow.

A reproducible study of Hagenaars, Paredes-Vallés & de Croon, "Self-Supervised Learning of Event-Based
Optical Flow with Spiking Neural Networks" (NeurIPS 2021), with quantisation and ONNX deployment.

Conventions used throughout the package:

- events are NumPy structured arrays with fields ``x``, ``y`` (pixels, int16), ``t`` (seconds, float64) and
  ``p`` (polarity in {-1, +1}, int8); see :mod:`eventflow.events`;
- flow maps are ``(B, 2, H, W)`` tensors, channel 0 = x (columns, rightwards), channel 1 = y (rows, downwards);
- neuron state is explicit: ``step(x, state) -> (out, state)``.

Importing the package has no side effects; submodules are imported on use.
"""

__version__ = "0.1.0"
