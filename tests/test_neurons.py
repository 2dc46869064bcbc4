"""Neurons: surrogate gradients against their formulas, LIF-type steps against analytic traces, state helpers."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from eventflow.neurons import analog, functional, modules, surrogates
from eventflow.neurons.functional import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    PLIFParameters,
    PLIFState,
    XLIFParameters,
    XLIFState,
    alif_step,
    detach_state,
    lif_step,
    plif_step,
    reset_state,
    xlif_step,
)

# ------------------------------------------------------------------------------------------------ surrogates


def _normal(x, mu, sigma):
    return torch.exp(-((x - mu) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


ANALYTIC = {
    "arctan": lambda x, w: 1 / (1 + w * x**2),
    "superspike": lambda x, w: 1 / (1 + w * x.abs()) ** 2,
    "triangle": lambda x, w: torch.clamp(1 - w * x.abs(), min=0),
    "multigauss": lambda x, w: 1.15 * _normal(x, 0, w) - 0.15 * _normal(x, w, 6 * w) - 0.15 * _normal(x, -w, 6 * w),
}


@pytest.mark.parametrize("name", sorted(surrogates.SURROGATES))
@pytest.mark.parametrize("width", [0.5, 10.0, torch.tensor(3.0, dtype=torch.float64)])
def test_surrogate_forward_is_strict_heaviside_and_backward_matches_formula(name, width):
    x = torch.linspace(-1.5, 1.5, 301, dtype=torch.float64)
    x[150] = 0.0
    x.requires_grad_()
    z = surrogates.get_surrogate(name)(x, width)
    assert torch.equal(z, (x > 0).double())
    assert z[150].item() == 0.0  # H(0) = 0: strict
    z.backward(torch.ones_like(z) * 2.0)
    w = float(width)
    expected = 2.0 * ANALYTIC[surrogates.canonical_surrogate(name)](x.detach(), w)
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)


def test_surrogate_aliases_are_the_reference_names():
    assert {"arctanspike", "superspike", "trianglespike", "mgspike"} <= set(surrogates.SURROGATES)
    assert surrogates.get_surrogate("mgspike") is surrogates.multigauss_spike


def test_unknown_surrogate_lists_valid_choices():
    with pytest.raises(ValueError, match="unknown surrogate 'sigmoidspike'; valid choices: arctan, superspike"):
        surrogates.get_surrogate("sigmoidspike")
    with pytest.raises(ValueError, match="valid choices"):
        modules.ConvLIF(2, 4, surrogate="nope")


def test_surrogate_width_has_no_gradient_and_dtype_is_kept():
    w = torch.tensor(10.0, requires_grad=True)
    x = torch.randn(5, dtype=torch.float32, requires_grad=True)
    z = surrogates.arctan_spike(x, w)
    assert z.dtype == torch.float32
    z.sum().backward()
    assert w.grad is None and x.grad is not None


# --------------------------------------------------------------------------------------------------- LIF traces


def _lif_params(leak, thresh, **kw):
    c = len(leak)
    return LIFParameters(torch.tensor(leak, dtype=torch.float64).view(c, 1, 1),
                         torch.tensor(thresh, dtype=torch.float64).view(c, 1, 1), **kw)


def _zeros(c, dtype=torch.float64):
    return LIFState(torch.zeros(1, c, 1, 1, dtype=dtype), torch.zeros(1, c, 1, 1, dtype=dtype))


def test_lif_constant_current_follows_closed_form_until_first_spike():
    # per channel: v_t = I (1 - beta^t) while no spike; first spike at the first t with v_t > theta
    leak = [-1.0, 0.0, 0.5, -2.0]
    thresh = [0.8, 0.5, 0.95, 0.3]
    current = 1.0
    params = _lif_params(leak, thresh)
    state = _zeros(4)
    beta = torch.sigmoid(torch.tensor(leak, dtype=torch.float64))
    first_spike = [None] * 4
    for t in range(1, 40):
        z, state = lif_step(torch.full((1, 4, 1, 1), current, dtype=torch.float64), state, params)
        for c in range(4):
            if first_spike[c] is None:
                expected = current * (1 - beta[c].item() ** t)
                assert state.v[0, c].item() == pytest.approx(expected, rel=1e-12)
                if z[0, c].item() == 1.0:
                    first_spike[c] = t
    for c in range(4):
        b, th = beta[c].item(), thresh[c]
        expected_t = math.floor(math.log(1 - th / current) / math.log(b)) + 1  # first t with 1 - b^t > th
        assert first_spike[c] == expected_t


@pytest.mark.parametrize("hard_reset", [True, False])
def test_lif_reset_values_after_a_spike(hard_reset):
    # beta = 0.5, theta = 0.8, I = 1: v = 0.5, 0.75, 0.875 (spike), then reset
    params = _lif_params([0.0], [0.8], hard_reset=hard_reset)
    state = _zeros(1)
    trace, spikes = [], []
    for _ in range(5):
        z, state = lif_step(torch.ones(1, 1, 1, 1, dtype=torch.float64), state, params)
        trace.append(state.v.item())
        spikes.append(z.item())
    assert spikes[:3] == [0.0, 0.0, 1.0]
    if hard_reset:  # v_4 = beta v_3 (1 - 1) + (1 - beta) I
        assert trace[3] == pytest.approx(0.5)
        assert trace[4] == pytest.approx(0.75)
    else:  # v_4 = beta v_3 + (1 - beta) I - theta
        assert trace[3] == pytest.approx(0.5 * 0.875 + 0.5 - 0.8)
        assert trace[4] == pytest.approx(0.5 * trace[3] + 0.5)


def test_lif_threshold_is_clamped_to_0_01():
    # theta = max(-1, 0.01) = 0.01; beta = sigmoid(-inf-ish) ~ 0 so v_1 ~ I
    params = _lif_params([-30.0, -30.0], [-1.0, -1.0])
    current = torch.tensor([0.009, 0.011], dtype=torch.float64).view(1, 2, 1, 1)
    z, state = lif_step(current, _zeros(2), params)
    assert z.flatten().tolist() == [0.0, 1.0]
    assert functional.MIN_THRESH == 0.01


def test_lif_leak_is_sigmoid_of_the_parameter():
    params = _lif_params([1.5], [100.0])
    z, state = lif_step(torch.ones(1, 1, 1, 1, dtype=torch.float64), _zeros(1), params)
    beta = 1 / (1 + math.exp(-1.5))
    assert state.v.item() == pytest.approx(1 - beta)
    v0 = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    _, state = lif_step(torch.zeros(1, 1, 1, 1, dtype=torch.float64), LIFState(v0, torch.zeros_like(v0)), params)
    assert state.v.item() == pytest.approx(2.0 * beta)


def test_detach_blocks_the_reset_path_only():
    c = 3
    leak, thresh = torch.zeros(c, 1, 1), torch.full((c, 1, 1), 0.5)
    for detach in (True, False):
        v = torch.rand(1, c, 2, 2, requires_grad=True)
        z = torch.tensor([1.0, 0.0]).repeat(1, c, 2, 1).requires_grad_()  # spikes and silence
        params = LIFParameters(leak, thresh, detach=detach)
        _, new = lif_step(torch.rand(1, c, 2, 2), LIFState(v, z), params)
        dv, dz = torch.autograd.grad(new.v.sum(), (v, z), allow_unused=True)
        assert dv is not None and dv.abs().sum() > 0
        if detach:
            assert dz is None or dz.abs().sum() == 0
        else:
            assert dz.abs().sum() > 0


def test_gradient_still_flows_through_the_recurrent_convolution_of_z():
    layer = modules.ConvLIFRecurrent(2, 3, kernel_size=3)
    state = layer.init_state(1, 4, 4)
    z_prev = torch.ones_like(state.z, requires_grad=True)
    out, new = layer(torch.rand(1, 2, 4, 4), LIFState(state.v, z_prev))
    (grad,) = torch.autograd.grad(new.v.sum(), z_prev)
    assert grad.abs().sum() > 0  # through W_rec * z, although the reset term is detached


def test_lif_update_core_has_the_backend_signature():
    names = list(inspect.signature(functional.lif_update_torch).parameters)
    assert names == ["current", "v", "z", "beta", "theta", "width", "hard_reset", "detach", "surrogate"]
    assert functional.LIF_BACKENDS["torch"] is functional.lif_update_torch


def test_lif_backend_switch_selects_the_registered_core(monkeypatch):
    calls = []

    def spy(*args):
        calls.append(args[4].shape)  # theta, (C, 1, 1), computed by the caller
        return functional.lif_update_torch(*args)

    monkeypatch.setitem(functional.LIF_BACKENDS, "spy", spy)
    params = _lif_params([0.0, 1.0], [0.3, 0.4])
    z_torch, s_torch = lif_step(torch.ones(1, 2, 1, 1, dtype=torch.float64), _zeros(2), params)
    z_spy, s_spy = lif_step(torch.ones(1, 2, 1, 1, dtype=torch.float64), _zeros(2), params, backend="spy")
    assert calls == [torch.Size([2, 1, 1])]
    assert torch.equal(z_torch, z_spy) and torch.equal(s_torch.v, s_spy.v)
    with pytest.raises(ValueError, match="unknown LIF backend 'cuda-op'; valid choices: torch"):
        lif_step(torch.ones(1, 2, 1, 1), _zeros(2, torch.float32), params, backend="cuda-op")
    with pytest.raises(ValueError, match="no LIF core"):
        modules.ConvALIF(2, 2).set_backend("spy")


# --------------------------------------------------------------------------------------- PLIF, ALIF and XLIF


def test_plif_trace_and_current():
    # constant presynaptic drive p*: p_t = p* (1 - beta_p^t); current I - sigmoid(g) p_t
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    params = PLIFParameters(leak_v=one * 0.0, leak_pt=one * 1.0, add_pt=one * -2.0, thresh=one * 100.0)
    presyn = torch.full((1, 1, 1, 1), 0.6, dtype=torch.float64)
    current = torch.full((1, 1, 1, 1), 1.0, dtype=torch.float64)
    state = PLIFState(*(torch.zeros(1, 1, 1, 1, dtype=torch.float64) for _ in range(3)))
    bp, g, bv = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(2.0)), 0.5
    v = 0.0
    for t in range(1, 5):
        _, state = plif_step(current, presyn, state, params)
        p = 0.6 * (1 - bp**t)
        v = bv * v + (1 - bv) * (1.0 - g * p)
        assert state.pt.item() == pytest.approx(p)
        assert state.v.item() == pytest.approx(v)


def test_presynaptic_activity_is_pooled_channel_mean_of_abs():
    x = torch.zeros(1, 2, 5, 5)
    x[0, 0, 2, 2] = 3.0
    x[0, 1, 2, 2] = -1.0
    p = functional.presynaptic_activity(x, kernel_size=3)
    assert p.shape == (1, 1, 5, 5)
    assert p[0, 0, 1:4, 1:4].flatten().tolist() == pytest.approx([2.0 / 9] * 9)  # mean |x| = 2, over 9 pixels
    assert p[0, 0, 0, 0].item() == 0.0


def _alif_params(t0, t1, hard_reset=False):
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    return ALIFParameters(leak_v=one * 0.0, leak_t=one * 0.0, t0=one * t0, t1=one * t1, hard_reset=hard_reset)


def test_alif_adaptive_threshold_and_soft_reset_use_previous_threshold():
    params = _alif_params(0.3, 1.0)
    zeros = [torch.zeros(1, 1, 1, 1, dtype=torch.float64) for _ in range(3)]
    state = ALIFState(*zeros)
    current = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    # step 1: a_1 = 0, theta = 0.3, v_1 = 0.5 > 0.3: spike
    z, state = alif_step(current, state, params)
    assert (z.item(), state.v.item(), state.a.item()) == (1.0, 0.5, 0.0)
    # step 2: a_2 = 0.5 a_1 + 0.5 z_1 = 0.5, theta_2 = 0.8; v_2 = 0.25 + 0.5 - 1 * (0.3 + 1 * a_1) = 0.45: no spike
    z, state = alif_step(current, state, params)
    assert state.a.item() == pytest.approx(0.5)
    assert state.v.item() == pytest.approx(0.45)
    assert z.item() == 0.0


def test_alif_threshold_parameters_are_clamped():
    params = _alif_params(-5.0, -5.0)  # t0 -> 0.01, t1 -> 0
    state = ALIFState(*(torch.zeros(1, 1, 1, 1, dtype=torch.float64) for _ in range(3)))
    z, _ = alif_step(torch.full((1, 1, 1, 1), 0.021, dtype=torch.float64), state, params)  # v = 0.0105 > 0.01
    assert z.item() == 1.0


def test_xlif_threshold_follows_the_presynaptic_trace():
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    params = XLIFParameters(leak_v=one * 0.0, leak_pt=one * 0.0, t0=one * 0.1, t1=one * 2.0)
    state = XLIFState(*(torch.zeros(1, 1, 1, 1, dtype=torch.float64) for _ in range(3)))
    presyn = torch.full((1, 1, 1, 1), 0.4, dtype=torch.float64)
    current = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    z, state = xlif_step(current, presyn, state, params)  # pt = 0.2, theta = 0.5, v = 0.5: no spike (strict)
    assert (state.pt.item(), state.v.item(), z.item()) == (pytest.approx(0.2), 0.5, 0.0)
    z, state = xlif_step(current, presyn, state, params)  # pt = 0.3, theta = 0.7, v = 0.75: spike
    assert (state.pt.item(), state.v.item(), z.item()) == (pytest.approx(0.3), 0.75, 1.0)
    z, state = xlif_step(current, presyn, state, params)  # soft reset by t0 + t1 pt_prev = 0.7
    assert state.v.item() == pytest.approx(0.375 + 0.5 - 0.7)


# ---------------------------------------------------------------------------------------------- state helpers


def test_reset_state_zeroes_only_masked_samples_of_nested_states():
    s = (LIFState(torch.ones(3, 2, 1, 1), torch.ones(3, 2, 1, 1)), (torch.full((3, 4), 2.0),))
    out = reset_state(s, torch.tensor([False, True, False]))
    assert isinstance(out[0], LIFState) and isinstance(out[1], tuple)
    assert out[0].v[:, 0, 0, 0].tolist() == [1.0, 0.0, 1.0]
    assert out[1][0][:, 0].tolist() == [2.0, 0.0, 2.0]
    assert s[0].v[1].sum() == 2  # not in place
    with pytest.raises(ValueError, match=r"\(B,\) bool"):
        reset_state(s, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="2 samples but a state tensor has batch 3"):
        reset_state(s, torch.tensor([True, False]))


def test_reset_state_keeps_gradients_of_the_other_samples():
    v = torch.ones(2, 1, requires_grad=True)
    out = reset_state(LIFState(v * 3, v * 1), torch.tensor([True, False]))
    out.v.sum().backward()
    assert v.grad.flatten().tolist() == [0.0, 3.0]


def test_detach_state_detaches_every_tensor_and_keeps_types():
    v = torch.ones(2, requires_grad=True) * 2
    out = detach_state([LIFState(v, v), (v,)])
    assert isinstance(out, list) and isinstance(out[0], LIFState)
    assert not out[0].v.requires_grad and not out[1][0].requires_grad
    with pytest.raises(ValueError, match="got int"):
        detach_state((1,))


# ---------------------------------------------------------------------------------------------------- modules


@pytest.mark.parametrize("cls", [modules.ConvLIF, modules.ConvPLIF, modules.ConvALIF, modules.ConvXLIF])
def test_spiking_layers_initialise_like_the_reference(cls):
    torch.manual_seed(0)
    layer = cls(8, 16, kernel_size=3)
    bound = math.sqrt(1 / 8)
    assert layer.ff.bias is None
    assert layer.ff.weight.abs().max() <= bound and layer.ff.weight.abs().max() > 0.9 * bound
    assert float(layer.act_width) == 10.0
    per_channel = {n: p for n, p in layer.named_parameters() if n != "ff.weight"}
    per_channel.update({n: b for n, b in layer.named_buffers() if n != "act_width"})
    assert all(p.shape == (16, 1, 1) for p in per_channel.values())
    leak = per_channel.get("leak", per_channel.get("leak_v"))
    assert abs(leak.mean().item() + 4.0) < 0.1


def test_recurrent_spiking_layer_weights_and_learnable_switches():
    layer = modules.ConvLIFRecurrent(2, 16, kernel_size=3, learn_leak=False, learn_thresh=False,
                                     thresh=(0.8, 0.1))
    assert layer.rec.weight.abs().max() <= math.sqrt(1 / 16)
    assert [n for n, _ in layer.named_parameters()] == ["ff.weight", "rec.weight"]
    assert {"leak", "thresh", "act_width"} <= {n for n, _ in layer.named_buffers()}
    assert layer.thresh.std() > 0.01
    alif = modules.ConvALIF(2, 4)
    assert {"t0", "t1"} <= {n for n, _ in alif.named_buffers()} and not alif.hard_reset


def test_spiking_layer_output_adds_residual_but_state_keeps_spikes():
    layer = modules.ConvLIF(2, 2, kernel_size=1)
    x = torch.rand(1, 2, 3, 3)
    out, state = layer(x, layer.init_state(1, 3, 3), residual=x)
    torch.testing.assert_close(out, state.z + x)


def test_strided_layers_state_lives_on_the_output_grid():
    layer = modules.ConvPLIF(2, 4, kernel_size=3, stride=2)
    out, state = layer(torch.rand(2, 2, 8, 8), layer.init_state(2, 4, 4))
    assert out.shape == state.pt.shape == (2, 4, 4, 4)


def test_conv_gru_matches_its_equations_with_zero_weights():
    gru = analog.ConvGRU(2, 3, kernel_size=3)
    with torch.no_grad():
        for gate, b in ((gru.update_gate, 0.4), (gru.reset_gate, 0.0), (gru.out_gate, 0.7)):
            gate.weight.zero_()
            gate.bias.fill_(b)
    h0 = torch.full((1, 3, 2, 2), 0.5)
    h, state = gru(torch.rand(1, 2, 2, 2), analog.GRUState(h0))
    u = 1 / (1 + math.exp(-0.4))
    torch.testing.assert_close(h, torch.full_like(h0, 0.5 * (1 - u) + math.tanh(0.7) * u))


def test_leaky_and_rnn_cells():
    leaky = analog.ConvLeaky(1, 1, kernel_size=1, activation=None, leak=(0.0, 0.0))
    with torch.no_grad():
        leaky.ff.weight.fill_(1.0)
        leaky.ff.bias.zero_()
    state = leaky.init_state(1, 1, 1)
    for expected in (0.5, 0.75, 0.875):
        out, state = leaky(torch.ones(1, 1, 1, 1), state)
        assert out.item() == pytest.approx(expected)
    rnn = analog.ConvRNN(2, 2)
    out, state = rnn(torch.rand(1, 2, 4, 4), rnn.init_state(1, 4, 4))
    assert (out >= 0).all() and (state.h.abs() < 1).all()
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        analog.ConvLayer(2, 2, activation="gelu")
