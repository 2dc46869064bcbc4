"""Deployment exports of the flow models.

- :mod:`.onnx`: one time step with explicit state as an ONNX graph (:func:`export_onnx`), spiking layers as
  ``eventflow.LIF``/``PLIF``/``ALIF``/``XLIF`` nodes defined by model-local functions (:mod:`.functions`);
- :mod:`.runtime`: running such a graph in onnxruntime window by window (:class:`OnnxStepper`);
- :mod:`.parity`: onnxruntime against PyTorch over a recording, free-running and teacher-forced, with spike flips;
- :mod:`.latency`: per-window latency of onnxruntime against PyTorch;
- :mod:`.nir`: the Neuromorphic Intermediate Representation of LIF-FireNet;
- :mod:`.ort_library`: the native onnxruntime custom-op library implementing ``eventflow.LIF``.

Submodules are imported where used (``from eventflow.export.onnx import export_onnx``), so that importing the
package costs nothing.
"""
