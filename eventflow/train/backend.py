"""Selecting the LIF core of a model: ``"torch"`` (PyTorch expressions), ``"cpp"`` (the fused operator of
:mod:`eventflow.lif_op`, about twice as fast to train on a CPU) or ``"auto"``.

Both cores give the same forward values bit for bit; the gradients of the per-channel leaks and thresholds
are sums over the batch and the pixels, which the operator accumulates in double precision, so they agree
only up to float32 rounding, and a long training run drifts apart like any two runs with different reduction
orders (the first dozen steps of ``quick_snn`` give identical losses).

- ``"cpp"``: the C++ operator is registered as the ``"cpp"`` backend of :mod:`eventflow.neurons.functional` on
  first use; where it cannot be built this is an error.
- ``"auto"``: ``"cpp"`` where the operator can be built and loaded, else ``"torch"``; in that case
  :mod:`eventflow.lif_op` says why once, in a ``LifOpFallbackWarning`` (the results are the same either way,
  only the speed differs). Models without LIF/PLIF layers use ``"torch"``.
"""

from __future__ import annotations

from eventflow.models.base import FlowModel
from eventflow.neurons.functional import LIF_BACKENDS, register_lif_backend

BACKENDS = ("torch", "cpp", "auto")


def _has_lif_core(model: FlowModel) -> bool:
    return any(layer.neuron in ("lif", "plif") for layer in model.spiking_layers())


def _register_cpp() -> bool:
    """Register the C++ operator as backend ``"cpp"``; False where it cannot be built (with lif_op's warning)."""
    if "cpp" in LIF_BACKENDS:
        return True
    from eventflow import lif_op  # imported on use: loading it may compile the operator

    if not lif_op.available():
        return False
    register_lif_backend("cpp", lif_op.lif_update)
    return True


def apply_lif_backend(model: FlowModel, backend: str) -> str:
    """Run ``model``'s LIF/PLIF layers with ``backend`` (see the module docstring); returns the backend used."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown LIF backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if not _has_lif_core(model):
        if backend == "cpp":
            raise ValueError(f"lif_backend 'cpp': {model.config.name} has no LIF or PLIF layers")
        return "torch"
    if backend == "auto":
        backend = "cpp" if _register_cpp() else "torch"
    elif backend == "cpp" and not _register_cpp():
        raise ValueError("lif_backend 'cpp': the C++ LIF operator could not be built or loaded "
                         "(python -m eventflow.lif_op --build shows why); use lif_backend 'torch' or 'auto'")
    model.set_lif_backend(backend)
    return backend
