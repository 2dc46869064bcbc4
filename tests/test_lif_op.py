"""eventflow.lif_op: the C++ LIF operator against the PyTorch expression.

The forward must equal the expression bit for bit (torch.equal), the C++ backward must match autograd through the
expression with the surrogate, and the operator must pass torch.library.opcheck, gradcheck and torch.compile. The
build is cached (a second process does not recompile) and, without a compiler, lif_update falls back with one notice.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from eventflow import lif_op, paths
from eventflow.neurons.functional import lif_update_torch
from eventflow.neurons.surrogates import CANONICAL_SURROGATES

# All tests that use the compiled operator run on one xdist worker (make test uses --dist loadgroup): one build.
pytestmark = pytest.mark.xdist_group("lif_op")

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (4, 16, 33, 17), (0, 2, 3, 3)]
SURROGATES = tuple(CANONICAL_SURROGATES)  # the names the operator takes


@pytest.fixture(scope="module")
def op():
    """The compiled operator, built once per test session (20-50 s the first time, then cached under build/)."""
    for tool in (os.environ.get("CXX", "c++"), "ninja"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool!r} is not on PATH, so the operator cannot be built: only the fallback is tested")
    lif_op.build()  # tools that are present but fail to build the operator are a test error, not a skip
    return torch.ops.eventflow


def make_inputs(shape, dtype=torch.float32, seed=0, binary_z=True, requires_grad=False):
    """Random (current, v, z, beta, theta) with spikes on both sides of the threshold."""
    g = torch.Generator().manual_seed(seed)
    channels = shape[1]
    current = torch.randn(shape, generator=g, dtype=torch.float64)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    z = torch.rand(shape, generator=g, dtype=torch.float64)
    z = (z > 0.5).double() if binary_z else z
    beta = torch.sigmoid(torch.randn(channels, 1, 1, generator=g, dtype=torch.float64))
    theta = torch.rand(channels, 1, 1, generator=g, dtype=torch.float64).clamp_min(0.01)
    tensors = [t.to(dtype) for t in (current, v, z, beta, theta)]
    return [t.requires_grad_(requires_grad) for t in tensors]


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values behind a strided view (every other element of a tensor twice as wide)."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    wide[..., ::2] = t
    view = wide[..., ::2]
    assert not view.is_contiguous() or t.numel() <= 1
    return view


# --- forward: bit-identical to the PyTorch expression --------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("hard_reset", [True, False])
def test_forward_is_bit_identical(op, shape, dtype, hard_reset):
    for seed, binary_z in ((0, True), (1, False)):
        inputs = make_inputs(shape, dtype, seed=seed, binary_z=binary_z)
        v_out, z_out = op.lif_update(*inputs, 10.0, hard_reset, True, "arctan")
        v_ref, z_ref = lif_update_torch(*inputs, 10.0, hard_reset, True, "arctan")
        assert v_out.dtype == z_out.dtype == dtype and v_out.shape == shape
        assert torch.equal(v_out, v_ref)
        assert torch.equal(z_out, z_ref)


def test_forward_spikes_on_both_sides(op):
    """The random inputs exercise both branches of the Heaviside step (else the equality tests prove little)."""
    _, z_out = op.lif_update(*make_inputs((4, 16, 33, 17)), 10.0, True, True, "arctan")
    assert 0.1 < z_out.mean().item() < 0.9


@pytest.mark.parametrize("hard_reset", [True, False])
def test_forward_non_contiguous_inputs(op, hard_reset):
    current, v, z, beta, theta = make_inputs((2, 3, 6, 5), seed=3)
    strided = [
        non_contiguous(current),
        v.transpose(2, 3).contiguous().transpose(2, 3),  # (B, C, H, W) view of a (B, C, W, H) tensor
        z.contiguous(memory_format=torch.channels_last),
        beta,
        torch.stack([theta, theta], dim=1)[:, 0],  # (C, 1, 1) with stride 2 along C
    ]
    assert not any(strided[i].is_contiguous() for i in (0, 1, 2, 4))
    v_out, z_out = op.lif_update(*strided, 10.0, hard_reset, True, "arctan")
    v_ref, z_ref = lif_update_torch(current, v, z, beta, theta, 10.0, hard_reset, True, "arctan")
    assert torch.equal(v_out, v_ref) and torch.equal(z_out, z_ref)
    assert v_out.is_contiguous() and z_out.is_contiguous()


def test_hand_computed_step(op):
    """One step by hand: hard reset zeroes the decayed potential where z = 1; soft reset subtracts theta."""
    current = torch.tensor([[[[2.0, 0.5]]]])
    v = torch.tensor([[[[0.5, 0.5]]]])
    z = torch.tensor([[[[0.0, 1.0]]]])
    beta, theta = torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.8)
    v_out, z_out = op.lif_update(current, v, z, beta, theta, 10.0, True, True, "arctan")
    assert v_out.flatten().tolist() == [0.5 * 0.5 + 0.5 * 2.0, 0.5 * 0.5]
    assert z_out.flatten().tolist() == [1.0, 0.0]
    v_out, _ = op.lif_update(current, v, z, beta, theta, 10.0, False, True, "arctan")
    assert torch.allclose(v_out.flatten(), torch.tensor([1.25, 0.25 + 0.25 - 0.8]))


# --- backward: the surrogate gradient ------------------------------------------------------------------------------


def grads(fn, inputs, hard_reset, detach, surrogate, width, seed=7):
    v_out, z_out = fn(*inputs, width, hard_reset, detach, surrogate)
    g = torch.Generator().manual_seed(seed)
    grad_v = torch.randn(v_out.shape, generator=g, dtype=v_out.dtype)
    grad_z = torch.randn(z_out.shape, generator=g, dtype=z_out.dtype)
    return torch.autograd.grad((v_out, z_out), inputs, (grad_v, grad_z), allow_unused=True)


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("hard_reset", [True, False])
@pytest.mark.parametrize("detach", [True, False])
def test_backward_matches_autograd_reference(op, surrogate, hard_reset, detach):
    # Widths where the surrogate is far from zero near the threshold (triangle and mgspike have support ~1/w, ~w).
    width = {"arctan": 10.0, "superspike": 10.0, "triangle": 0.8, "multigauss": 0.5}[surrogate]
    inputs = make_inputs((3, 4, 6, 5), torch.float64, seed=11, requires_grad=True)
    got = grads(lif_op.lif_update, inputs, hard_reset, detach, surrogate, width)
    want = grads(lif_update_torch, inputs, hard_reset, detach, surrogate, width)
    names = ("current", "v", "z", "beta", "theta")
    for name, a, b in zip(names, got, want, strict=True):
        if name == "z" and detach:
            assert a is None and b is None, "a detached reset path must give z no gradient"
            continue
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), f"{name}: max |diff| {(a - b).abs().max():.3g}"
        assert a.abs().sum() > 0, f"{name}: an all-zero gradient would prove nothing"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_low_precision(op, dtype):
    inputs64 = make_inputs((2, 3, 8, 8), torch.float64, seed=5, requires_grad=True)
    inputs = [t.detach().to(dtype).requires_grad_() for t in inputs64]
    got = grads(lif_op.lif_update, inputs, True, False, "arctan", 10.0)
    want = grads(lif_update_torch, inputs, True, False, "arctan", 10.0)
    tol = {torch.float32: 1e-5, torch.bfloat16: 5e-2}[dtype]
    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        assert torch.allclose(a.double(), b.double(), rtol=tol, atol=tol * a.double().abs().max().item())


def _normal(x, mu, sigma):
    return math.exp(-((x - mu) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


SURROGATE_TABLE = {  # s(x) at x = v_out - theta, written out with the math module
    "arctan": lambda x, w: 1 / (1 + w * x * x),
    "superspike": lambda x, w: 1 / (1 + w * abs(x)) ** 2,
    "triangle": lambda x, w: max(0.0, 1 - w * abs(x)),
    "multigauss": lambda x, w: 1.15 * _normal(x, 0, w) - 0.15 * _normal(x, w, 6 * w) - 0.15 * _normal(x, -w, 6 * w),
}


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_surrogate_formula(op, surrogate):
    """With grad_v_out = 0 and grad_z_out = 1, grad_current = s(x) (1 - beta) and grad_theta = -sum s(x)."""
    width = 2.0
    xs = [-0.7, -0.3, -0.05, 0.0, 0.05, 0.3, 0.7]
    theta = torch.full((1, 1, 1), 0.5, dtype=torch.float64)
    beta = torch.full((1, 1, 1), 0.25, dtype=torch.float64)
    # Zero potential and no spike: v_out = (1 - beta) I, so I = (x + theta) / (1 - beta) puts v_out - theta at x.
    current = ((torch.tensor(xs, dtype=torch.float64) + 0.5) / 0.75).view(1, 1, 1, -1)
    v = torch.zeros_like(current)
    z = torch.zeros_like(current)
    grad_current, _, grad_z, _, grad_theta = op.lif_update_backward(
        torch.zeros_like(v), torch.ones_like(v), current, v, z, beta, theta, width, True, True, surrogate
    )
    assert grad_z.shape == (0,)  # a detached reset path: the operator does not compute the z gradient
    want = [SURROGATE_TABLE[surrogate](x, width) for x in xs]
    assert grad_current.flatten().tolist() == pytest.approx([0.75 * s for s in want], rel=1e-9, abs=1e-12)
    assert grad_theta.item() == pytest.approx(-sum(want), rel=1e-9)


def test_gradcheck_membrane_path(op):
    """gradcheck (float64, numerical vs analytic) of v_out, which is smooth in every input; z_out's step is not."""
    for hard_reset in (True, False):
        inputs = make_inputs((2, 2, 3, 3), torch.float64, seed=2, requires_grad=True)

        def v_out(*tensors, hard_reset=hard_reset):
            return torch.ops.eventflow.lif_update(*tensors, 10.0, hard_reset, False, "arctan")[0]

        assert torch.autograd.gradcheck(v_out, inputs)


# --- opcheck, torch.compile ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "hard_reset", "detach", "surrogate", "strided"),
    [
        (torch.float64, True, True, "arctan", False),
        (torch.float32, False, False, "superspike", True),
        (torch.float64, True, False, "multigauss", True),
    ],
)
def test_opcheck(op, dtype, hard_reset, detach, surrogate, strided):
    current, v, z, beta, theta = make_inputs((2, 3, 4, 5), dtype, seed=4, requires_grad=True)
    if strided:
        current = non_contiguous(current.detach()).requires_grad_()
    args = (current, v, z, beta, theta, 1.5, hard_reset, detach, surrogate)
    torch.library.opcheck(op.lif_update.default, args)


@pytest.mark.parametrize("detach", [True, False])
def test_opcheck_backward(op, detach):
    current, v, z, beta, theta = make_inputs((2, 3, 4, 5), torch.float64, seed=6)
    grad_v_out, grad_z_out, _, _, _ = make_inputs((2, 3, 4, 5), torch.float64, seed=8)
    args = (non_contiguous(grad_v_out), grad_z_out, current, v, z, beta, theta, 10.0, False, detach, "triangle")
    torch.library.opcheck(op.lif_update_backward.default, args)


def test_torch_compile_fullgraph(op):
    """The fake kernels let dynamo/AOTAutograd trace the op and its backward without a graph break.

    backend="aot_eager" runs the traced forward and backward graphs as is; inductor adds a C++ codegen compile of
    ~45 s on a 2-core machine for no extra coverage of the operator's registrations.
    """

    def step(current, v, z, beta, theta):
        v_out, z_out = lif_op.lif_update(current, v, z, beta, theta, 10.0, False, False, "arctan")
        return (v_out * v_out).sum() + (z_out * current).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    inputs = make_inputs((2, 3, 4, 5), torch.float64, seed=9, requires_grad=True)
    loss = compiled(*inputs)
    got = torch.autograd.grad(loss, inputs)
    want_loss = step(*inputs)
    want = torch.autograd.grad(want_loss, inputs)
    assert torch.equal(loss, want_loss)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


# --- validation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"beta": torch.rand(3)}, "beta must have shape (C, 1, 1)"),
        ({"z": torch.rand(2, 3, 4, 4)}, "z has shape"),
        ({"theta": torch.rand(3, 1, 1, dtype=torch.float64)}, "theta has dtype"),
        ({"v": torch.rand(3, 4, 5)}, "v must be (B, C, H, W)"),
        ({"width": 0.0}, "width must be finite and positive"),
        ({"surrogate": "sigmoid"}, "unknown surrogate 'sigmoid'"),
    ],
)
def test_wrapper_rejects_bad_inputs(change, message):
    current, v, z, beta, theta = make_inputs((2, 3, 4, 5))
    kwargs = {"current": current, "v": v, "z": z, "beta": beta, "theta": theta} | change
    if "v" in change:
        kwargs["current"] = kwargs["z"] = change["v"]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        lif_op.lif_update(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("index", "bad", "message"),
    [
        (3, torch.rand(3, 1), "beta must have shape (C, 1, 1) = (3, 1, 1)"),
        (4, torch.rand(3, 1, 1, dtype=torch.float64), "all inputs must share v's dtype"),
        (0, torch.rand(2, 3, 4, 6), "current has shape"),
    ],
)
def test_operator_checks_inputs(op, index, bad, message):
    args = [*make_inputs((2, 3, 4, 5)), 10.0, True, True, "arctan"]
    args[index] = bad
    with pytest.raises(RuntimeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        op.lif_update(*args)
    with pytest.raises(RuntimeError, match="unknown surrogate 'nope'; valid choices are arctan"):
        op.lif_update(*make_inputs((2, 3, 4, 5)), 10.0, True, True, "nope")


def test_wrapper_takes_reference_aliases_and_tensor_width(op):
    """lif_update has the neurons' backend signature: reference surrogate names and a tensor width are accepted."""
    inputs = make_inputs((2, 3, 4, 5), torch.float64, seed=12, requires_grad=True)
    got = grads(lif_op.lif_update, inputs, False, True, "mgspike", torch.tensor(0.5))
    want = grads(lif_update_torch, inputs, False, True, "multigauss", 0.5)
    for a, b in zip(got, want, strict=True):
        assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(RuntimeError, match="unknown surrogate 'mgspike'"):  # the operator itself takes canonical names
        op.lif_update(*inputs, 0.5, False, True, "mgspike")


# --- build cache and fallback -------------------------------------------------------------------------------------


def test_build_is_cached(op):
    """A second build() in this process and a build in a second process reuse the compiled library."""
    library = lif_op.build()
    assert library == lif_op.build() and library.is_file()
    assert library.parent == lif_op.build_dir() and library.parent.is_relative_to(paths.project_root() / "build")
    before = {p.name: p.stat().st_mtime_ns for p in library.parent.iterdir() if p.suffix in (".so", ".o")}
    (library.parent / "lock").touch()  # a baton left by a killed build must not make the next one wait forever
    result = subprocess.run(
        [sys.executable, "-m", "eventflow.lif_op", "--build"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert str(library) in result.stdout
    after = {p.name: p.stat().st_mtime_ns for p in library.parent.iterdir() if p.suffix in (".so", ".o")}
    assert before == after, "the second process recompiled the operator"


def test_fallback_without_compiler(tmp_path):
    """No compiler on PATH: available() is False, one one-line notice, and lif_update still computes the step."""
    script = textwrap.dedent(
        """
        import json, warnings
        import torch
        from eventflow import lif_op
        from eventflow.neurons.functional import lif_update_torch
        inputs = [torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), torch.zeros(2, 3, 4, 4),
                  torch.full((3, 1, 1), 0.5), torch.full((3, 1, 1), 0.3)]
        inputs[1].requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = lif_op.lif_update(*inputs)
            second = lif_op.lif_update(*inputs, hard_reset=False)
        want = lif_update_torch(*inputs, 10.0, True, True, "arctan")
        first[1].sum().backward()
        notices = [str(w.message) for w in caught if issubclass(w.category, lif_op.LifOpFallbackWarning)]
        print(json.dumps({
            "available": lif_op.available(),
            "notices": notices,
            "equal": all(torch.equal(a, b) for a, b in zip(first, want)),
            "grad": inputs[1].grad is not None,
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "CXX"}
    env["PATH"] = str(tmp_path)  # an empty folder: no c++, no ninja
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["available"] is False
    assert report["equal"] and report["grad"]
    assert len(report["notices"]) == 1, report["notices"]
    notice = report["notices"][0]
    assert "\n" not in notice and "no C++ compiler" in notice and "PyTorch expression" in notice


def test_sources_are_found_relative_to_the_project():
    assert lif_op.source_dir() == paths.project_root() / "lif_op"
    assert (lif_op.source_dir() / "lif_op.cpp").is_file() and (lif_op.source_dir() / "lif_op_cuda.cu").is_file()
    assert Path(lif_op.build_dir(cuda=False)).name == "cpu" and Path(lif_op.build_dir(cuda=True)).name == "cuda"
