"""The C++ LIF operator: one fused, bit-exact step of the spiking LIF neuron, with its surrogate-gradient backward.

Hagenaars, Paredes-Vallés & de Croon (NeurIPS 2021), Sec. 3 (LIF neurons, reference ``ConvLIF``). With the input
current ``I``, the previous state ``(v, z)``, ``beta = sigmoid(leak)`` and ``theta = max(thresh, 0.01)``::

    hard reset:  v_out = v * beta * (1 - z) + (1 - beta) * I
    soft reset:  v_out = v * beta + (1 - beta) * I - z * theta
    z_out = H(v_out - theta),   H(x) = 1 if x > 0 else 0

and, in the backward pass, dH/dx is replaced by a surrogate ``s(x)`` of width ``w``
(:mod:`eventflow.neurons.surrogates`: arctan ``1 / (1 + w x^2)``, the paper's, with ``w = 10``; superspike,
triangle, multigauss). With ``detach=True`` the reset path through ``z`` carries no gradient (the reference
detaches ``z`` before the update).

The operator ``torch.ops.eventflow.lif_update`` (sources in ``lif_op/`` at the project root) does the same
floating-point operations in the same order as the PyTorch LIF core
:func:`eventflow.neurons.functional.lif_update_torch`, compiled without fused multiply-adds, so its outputs equal
that function's bit for bit. Its backward ``torch.ops.eventflow.lif_update_backward`` is C++ too, and fake kernels
make both usable under ``torch.compile``. :func:`lif_update` has the signature of the neurons' backend seam
(``LIFUpdate``), so ``lif_step(..., backend=...)`` can select it.

The operator is compiled on first use with ``torch.utils.cpp_extension`` (20-50 s once, cached under
``build/lif_op/`` at the project root; ``python -m eventflow.lif_op --build`` or ``make lif-op`` does it ahead of
time). Where it cannot be built (no C++ compiler, no ninja, a compile error) :func:`lif_update` says so once in a
:class:`LifOpFallbackWarning` and computes ``lif_update_torch`` instead; :func:`available` tells which.

Example (the same numbers with either backend):

>>> import torch
>>> current = torch.tensor([[[[2.0, 0.5]]]])  # (B, C, H, W) = (1, 1, 1, 2)
>>> v = torch.tensor([[[[0.5, 0.5]]]])
>>> z = torch.tensor([[[[0.0, 1.0]]]])
>>> beta, theta = torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.8)  # (C, 1, 1)
>>> v_out, z_out = lif_update(current, v, z, beta, theta)
>>> v_out.flatten().tolist(), z_out.flatten().tolist()
([1.25, 0.25], [1.0, 0.0])
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from eventflow import paths
from eventflow.neurons.functional import lif_update_torch
from eventflow.neurons.surrogates import CANONICAL_SURROGATES, canonical_surrogate

__all__ = [
    "LifOpFallbackWarning",
    "available",
    "build",
    "build_dir",
    "lif_update",
    "source_dir",
    "with_cuda",
]

EXTENSION_NAME = "eventflow_lif_op"
# No -march=native: the cached build must run on any x86-64/aarch64 CPU that shares the build folder.
# -ffp-contract=off forbids fused multiply-adds, which would round differently from eager PyTorch.
CXX_FLAGS = ("-O3", "-ffp-contract=off", "-fopenmp")
CUDA_FLAGS = ("-O3", "--fmad=false")
LD_FLAGS = ("-fopenmp",)


class LifOpFallbackWarning(UserWarning):
    """The C++ operator could not be built or loaded; :func:`lif_update` computes the PyTorch expression."""


# --- input checks (the Python wrapper and the fake kernels; the C++ kernels repeat them with TORCH_CHECK) ----------


def _check_inputs(
    current: Tensor, v: Tensor, z: Tensor, beta: Tensor, theta: Tensor, width: float, surrogate: str
) -> None:
    if v.dim() != 4:
        raise ValueError(f"lif_update: v must be (B, C, H, W), got shape {tuple(v.shape)}")
    for name, t in (("current", current), ("z", z)):
        if t.shape != v.shape:
            raise ValueError(
                f"lif_update: {name} has shape {tuple(t.shape)} but v has {tuple(v.shape)}; they must match"
            )
    channels = v.shape[1]
    for name, t in (("beta", beta), ("theta", theta)):
        if tuple(t.shape) != (channels, 1, 1):
            raise ValueError(f"lif_update: {name} must have shape (C, 1, 1) = ({channels}, 1, 1), got {tuple(t.shape)}")
    if not v.is_floating_point():
        raise ValueError(f"lif_update: v must be a floating-point tensor, got {v.dtype}")
    for name, t in (("current", current), ("z", z), ("beta", beta), ("theta", theta)):
        if t.dtype != v.dtype:
            raise ValueError(f"lif_update: {name} has dtype {t.dtype} but v has {v.dtype}; all inputs must share it")
        if t.device != v.device:
            raise ValueError(f"lif_update: {name} is on {t.device} but v is on {v.device}; all inputs must share it")
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"lif_update: width must be finite and positive, got {width}")
    if surrogate not in CANONICAL_SURROGATES:
        choices = ", ".join(CANONICAL_SURROGATES)
        raise ValueError(f"lif_update: unknown surrogate {surrogate!r}; valid choices: {choices}")


# --- fake kernels and autograd of the compiled operator ------------------------------------------------------------


def _fake_lif_update(current, v, z, beta, theta, width, hard_reset, detach, surrogate):
    _check_inputs(current, v, z, beta, theta, width, surrogate)
    return v.new_empty(v.shape), v.new_empty(v.shape)  # contiguous, like the C++ kernels' outputs


def _fake_lif_update_backward(grad_v_out, grad_z_out, current, v, z, beta, theta, width, hard_reset, detach, surrogate):
    _check_inputs(current, v, z, beta, theta, width, surrogate)
    for name, g in (("grad_v_out", grad_v_out), ("grad_z_out", grad_z_out)):
        if g.shape != v.shape or g.dtype != v.dtype or g.device != v.device:
            raise ValueError(f"lif_update_backward: {name} must be shaped, typed and placed like v")
    return (
        v.new_empty(v.shape),
        v.new_empty(v.shape),
        v.new_empty((0,) if detach else v.shape),  # no gradient for a detached reset path
        beta.new_empty(beta.shape),
        theta.new_empty(theta.shape),
    )


def _setup_context(ctx, inputs, output) -> None:
    current, v, z, beta, theta, width, hard_reset, detach, surrogate = inputs
    ctx.save_for_backward(current, v, z, beta, theta)
    ctx.width, ctx.hard_reset, ctx.detach, ctx.surrogate = width, hard_reset, detach, surrogate


def _backward(ctx, grad_v_out: Tensor | None, grad_z_out: Tensor | None):
    current, v, z, beta, theta = ctx.saved_tensors
    grad_v_out = torch.zeros_like(v) if grad_v_out is None else grad_v_out
    grad_z_out = torch.zeros_like(v) if grad_z_out is None else grad_z_out
    grad_current, grad_v, grad_z, grad_beta, grad_theta = torch.ops.eventflow.lif_update_backward.default(
        grad_v_out, grad_z_out, current, v, z, beta, theta, ctx.width, ctx.hard_reset, ctx.detach, ctx.surrogate
    )
    # A detached reset path gives z no gradient, as `z = z.detach()` does in the reference cell.
    return grad_current, grad_v, None if ctx.detach else grad_z, grad_beta, grad_theta, None, None, None, None


def _register_python_kernels() -> None:
    torch.library.register_fake("eventflow::lif_update", _fake_lif_update)
    torch.library.register_fake("eventflow::lif_update_backward", _fake_lif_update_backward)
    torch.library.register_autograd("eventflow::lif_update", _backward, setup_context=_setup_context)


# --- building and loading -----------------------------------------------------------------------------------------

_lock = threading.RLock()
_library_path: Path | None = None  # set once the operator is loaded and its Python kernels registered
_failure: str | None = None  # set once a build failed: the one-line reason


def source_dir() -> Path:
    """The folder of the C++/CUDA sources: ``lif_op/`` at the project root."""
    return paths.project_root() / "lif_op"


def with_cuda() -> bool:
    """Whether the build includes the CUDA kernels: a CUDA device is visible and a CUDA toolkit (nvcc) is found."""
    from torch.utils import cpp_extension  # imported on use: it pulls in setuptools

    return torch.cuda.is_available() and cpp_extension.CUDA_HOME is not None


def build_dir(cuda: bool | None = None) -> Path:
    """Where the compiled operator is cached: ``build/lif_op/cpu`` or ``build/lif_op/cuda`` at the project root.

    CPU-only and CUDA builds live apart so that switching between them does not rebuild each time.
    """
    cuda = with_cuda() if cuda is None else cuda
    return paths.project_root() / "build" / "lif_op" / ("cuda" if cuda else "cpu")


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Holds an flock on ``folder/eventflow.lock`` (released by the OS even if this process dies).

    ``cpp_extension`` has its own baton file ``lock``, but a process killed mid-build leaves it behind and every
    later build then waits forever; inside this lock no other build is running, so a leftover baton is stale.
    """
    import fcntl  # POSIX only; on other systems the build fails here and lif_update falls back with a notice

    with open(folder / "eventflow.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (folder / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compile_and_load(verbose: bool) -> Path:
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler: {compiler!r} is not on PATH (install g++ or set CXX)")
    if shutil.which("ninja") is None:
        raise RuntimeError("ninja is not on PATH (install it with `pip install ninja` or your package manager)")
    cuda = with_cuda()
    src = source_dir()
    sources = [src / "lif_op.cpp"] + ([src / "lif_op_cuda.cu"] if cuda else [])
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"{source}: C++ source of the LIF operator not found")
    folder = build_dir(cuda)
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder):
        library = cpp_extension.load(
            name=EXTENSION_NAME,
            sources=[str(s) for s in sources],
            extra_cflags=list(CXX_FLAGS),
            extra_cuda_cflags=list(CUDA_FLAGS),
            extra_ldflags=list(LD_FLAGS),
            extra_include_paths=[str(src)],
            build_directory=str(folder),
            with_cuda=cuda,
            is_python_module=False,
            verbose=verbose,
        )
    return Path(library)


def build(verbose: bool = False) -> Path:
    """Compiles the operator (or reuses the cached build), loads it and registers its fake kernels and autograd.

    Returns the path of the shared library. Raises whatever stopped the build (no compiler, compile error) with the
    compiler's output; :func:`available` is the non-raising form that :func:`lif_update` uses.
    """
    global _library_path
    with _lock:
        if _library_path is None:
            path = _compile_and_load(verbose)
            _register_python_kernels()
            _library_path = path
        return _library_path


def available() -> bool:
    """True when the compiled operator is loaded (building it on the first call), False when :func:`lif_update`
    falls back to the PyTorch expression; the reason is then given once as a :class:`LifOpFallbackWarning`."""
    global _failure
    if _library_path is not None:
        return True
    with _lock:
        if _library_path is None and _failure is None:
            try:
                build()
            except Exception as exc:  # any build or load failure selects the fallback, announced below
                first_line = (str(exc).strip().splitlines() or [""])[0][:200]
                _failure = f"{type(exc).__name__}: {first_line}"
                warnings.warn(
                    f"eventflow.lif_op: the C++ LIF operator is unavailable ({_failure}); using the PyTorch "
                    "expression. `python -m eventflow.lif_op --build` shows the full error.",
                    LifOpFallbackWarning,
                    stacklevel=3,
                )
        return _library_path is not None


def lif_update(
    current: Tensor,
    v: Tensor,
    z: Tensor,
    beta: Tensor,
    theta: Tensor,
    width: Tensor | float = 10.0,
    hard_reset: bool = True,
    detach: bool = True,
    surrogate: str = "arctan",
) -> tuple[Tensor, Tensor]:
    """One LIF step (equations in the module docstring) through the C++ operator, or the PyTorch LIF core.

    Args:
        current: input current ``I``, ``(B, C, H, W)``, floating point (float32/float64; float16/bfloat16 too).
        v: membrane potential at the previous step, ``(B, C, H, W)``, same dtype and device.
        z: spikes at the previous step (0/1), ``(B, C, H, W)``.
        beta: leak factor ``sigmoid(leak)`` in (0, 1), ``(C, 1, 1)``.
        theta: firing threshold ``max(thresh, 0.01)``, ``(C, 1, 1)``.
        width: surrogate width ``w`` (> 0; the paper uses 10). A tensor is read with ``float()`` (a host sync,
            and a graph break under ``torch.compile``): pass a Python float where it is fixed.
        hard_reset: reset ``v`` to 0 after a spike (True, the paper) or subtract ``theta`` (False).
        detach: no gradient through the reset path ``z`` (True, the paper).
        surrogate: a surrogate name of :mod:`eventflow.neurons.surrogates` (the reference's aliases too).

    Returns:
        ``(v_out, z_out)``, both ``(B, C, H, W)`` of ``v``'s dtype (contiguous from the operator); ``z_out`` is 0/1
        and differentiable through the surrogate. Gradients reach ``current``, ``v``, ``beta``, ``theta`` (summed
        to ``(C, 1, 1)``) and, with ``detach=False``, ``z``.

    Raises:
        ValueError: shapes, dtypes or devices that do not fit, a non-positive width or an unknown surrogate.
    """
    width = float(width)
    surrogate = canonical_surrogate(surrogate)
    _check_inputs(current, v, z, beta, theta, width, surrogate)
    if _library_path is not None or available():
        return tuple(
            torch.ops.eventflow.lif_update.default(current, v, z, beta, theta, width, hard_reset, detach, surrogate)
        )
    return lif_update_torch(current, v, z, beta, theta, width, hard_reset, detach, surrogate)


def main(argv: list[str] | None = None) -> int:
    """``python -m eventflow.lif_op --build``: compile (or find cached) and load the operator, print where it is."""
    parser = argparse.ArgumentParser(prog="python -m eventflow.lif_op", description=main.__doc__)
    parser.add_argument("--build", action="store_true", required=True, help="build and load the operator")
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands")
    args = parser.parse_args(argv)
    path = build(verbose=args.verbose)
    kernels = "CPU and CUDA" if with_cuda() else "CPU"
    print(f"eventflow.lif_op: {kernels} operator built and loaded from {path}")
    return 0


if __name__ == "__main__":
    # Run from the importable module, not __main__: the fake kernels must register under eventflow.lif_op, the
    # module named in the C++ library's set_python_module.
    from eventflow.lif_op import main as _main

    sys.exit(_main())
