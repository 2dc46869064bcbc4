"""Quantisation: fixed-point formats and quantisers, the fixed-point LIF against the float LIF, the integer
convolution, PTQ calibration on training data only, QAT gradients and fine-tuning, BatchNorm folding, checkpoints,
sizes and the integer ONNX export against the PyTorch model."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from eventflow.events import make_events
from eventflow.io.h5write import write_recording
from eventflow.models import build_model, load_model
from eventflow.neurons import ConvGRU, LIFParameters, LIFState, lif_step
from eventflow.quantize import (
    FixedPoint,
    LIFFormats,
    QuantConfig,
    QuantInfo,
    calibrate_on_training_split,
    choose_format,
    default_model_formats,
    fake_quantize,
    finetune,
    fixed_point_lif_step,
    fold_batchnorm,
    is_quantized,
    load_quantized,
    model_size,
    ptq,
    quantize_model,
    save_quantized,
)
from eventflow.quantize.fixed_point import quantize_weight, weight_scale
from eventflow.quantize.layers import ConvInput, GRUFormats, QuantizedGRU, formats_from_dict, formats_to_dict
from eventflow.quantize.lif import EXACT_ACCUMULATOR_BITS, accumulator_bits, lif_formats, quantized_lif_parameters
from eventflow.simulate.dataset import DatasetPaths
from eventflow.train import load_train_config

RES = (16, 20)


def quantized(name: str = "LIFFireNet", bits: int = 8, channels: int = 4, seed: int = 0, **cfg):
    """A small model with spread-out neuron parameters and its quantised copy (default formats)."""
    torch.manual_seed(seed)
    model = build_model(name, base_num_channels=channels)
    with torch.no_grad():
        for layer in model.layers().values():
            if hasattr(layer, "thresh"):
                layer.thresh.uniform_(0.2, 1.0)
                layer.leak.uniform_(-5.0, 0.0)
    config = QuantConfig(bits=bits, **cfg)
    return model, quantize_model(model, default_model_formats(model, config))


def recording(path, seed: int, resolution=RES, n: int = 3000, maps: int = 8):
    """A random recording with ``maps`` GT flow maps (dt=1) over one second."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.random(n))
    ev = make_events(rng.integers(0, resolution[1], n), rng.integers(0, resolution[0], n), t, rng.choice([-1, 1], n))
    flow = [(float(s), np.full((2, *resolution), 0.5, np.float32)) for s in np.linspace(0.0, 1.0, maps)]
    return write_recording(path, ev, resolution, flow_dt1=flow)


# --------------------------------------------------------------------------------------------- quantisers


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_quantiser_round_trip(bits):
    fmt = choose_format(3.0, bits)
    assert 3.0 * 2**fmt.frac <= fmt.qmax < 3.0 * 2 ** (fmt.frac + 1)  # the finest format that holds the range
    x = torch.linspace(-3.0, 3.0, 1001)
    q = fake_quantize(x, fmt)
    assert torch.equal(fake_quantize(q, fmt), q)  # grid values are fixed points
    ints = q * 2**fmt.frac
    assert torch.equal(ints, ints.round()) and ints.min() >= fmt.qmin and ints.max() <= fmt.qmax
    inside = (x >= fmt.qmin * fmt.scale) & (x <= fmt.qmax * fmt.scale)
    assert (q - x)[inside].abs().max() <= fmt.scale / 2
    assert torch.equal(q[x > fmt.max_value], torch.full_like(q[x > fmt.max_value], fmt.max_value))


def test_rounding_is_half_to_even_and_saturates():
    fmt = FixedPoint(4, 1)  # step 0.5, range [-4, 3.5]
    x = torch.tensor([0.25, 0.75, -0.25, 1.25, 10.0, -10.0])
    assert fake_quantize(x, fmt).tolist() == [0.0, 1.0, -0.0, 1.0, 3.5, -4.0]


def test_straight_through_gradient_is_one_inside_and_zero_when_saturated():
    fmt = FixedPoint(4, 1)
    x = torch.tensor([0.3, -1.2, 3.4, 9.0, -9.0], requires_grad=True)
    fake_quantize(x, fmt).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("bits", [4, 8])
def test_weight_quantiser_round_trip(bits):
    torch.manual_seed(0)
    w = torch.randn(5, 3, 3, 3)
    w[2] = 0.0  # a dead channel
    scale = weight_scale(w, bits).view(-1, 1, 1, 1)
    q = quantize_weight(w, scale.flatten(), bits)
    qmax = 2 ** (bits - 1) - 1
    assert torch.equal(q, q.round()) and q.abs().max() <= qmax and not q[2].any()
    inside = w.abs() <= qmax * scale
    assert ((q * scale - w).abs() <= scale / 2 + 1e-7)[inside].all()  # rounding error inside the clip range
    assert torch.equal(q[~inside].abs(), torch.full_like(q[~inside], qmax))  # clipped beyond it
    plain = w.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1) / qmax  # scale without clipping
    error = (q * scale - w).square().flatten(1).sum(1)
    assert (error <= (quantize_weight(w, plain.flatten(), bits) * plain - w).square().flatten(1).sum(1) + 1e-9).all()


def test_leak_grid_is_not_binary_unlike_a_uniform_grid_over_minus_250_to_1():
    beta = torch.sigmoid(torch.linspace(-4.5, -3.3, 50))  # the authors' LIF-FireNet: beta in [0.011, 0.035]
    step = 251 / 255  # 8 bits over [-250, 1]
    uniform = torch.round((beta + 250) / step) * step - 250
    assert len(torch.unique(uniform.round(decimals=3))) <= 2  # effectively binary: the leak is lost
    ours = fake_quantize(beta, choose_format(float(beta.max()), 8, signed=False))
    assert ((ours - beta).abs() / beta).max() < 0.01


def test_formats_serialise_and_invalid_configs_are_refused():
    _, qmodel = quantized()
    for layer in qmodel.layers().values():
        assert formats_from_dict(formats_to_dict(layer.formats)) == layer.formats
    with pytest.raises(ValueError, match="weight bits"):
        QuantConfig(bits=12)
    with pytest.raises(ValueError, match="unknown layer format kind"):
        formats_from_dict({"kind": "lstm"})


# ------------------------------------------------------------------------------------------ fixed-point LIF


def lif_case(seed: int, hard_reset: bool = True, thresh: float | None = None):
    gen = torch.Generator().manual_seed(seed)
    c = 6
    params = LIFParameters(leak=torch.empty(c, 1, 1).uniform_(-5, 1, generator=gen),
                           thresh=torch.full((c, 1, 1), thresh) if thresh else torch.empty(c, 1, 1).uniform_(
                               0.3, 1.2, generator=gen), hard_reset=hard_reset)
    grid = choose_format(4.0, 8)
    formats = lif_formats(grid, grid, float(torch.sigmoid(params.leak).max()), float(params.thresh.max()), 8, 8,
                          hard_reset)
    currents = torch.randn(20, 2, c, 5, 5, generator=gen) * 1.5
    return params, formats, currents


@pytest.mark.parametrize("hard_reset", [True, False])
def test_fixed_point_lif_step_is_within_the_rounding_bound_of_the_float_step(hard_reset):
    params, formats, currents = lif_case(1, hard_reset)
    beta_q, _ = quantized_lif_parameters(params, formats)
    d_beta = (beta_q - torch.sigmoid(params.leak)).abs()
    state = LIFState(torch.zeros(2, 6, 5, 5), torch.zeros(2, 6, 5, 5))
    for current in currents:
        _, fixed = fixed_point_lif_step(current, state, params, formats)
        _, ref = lif_step(current, state, params)  # the float step from the same (grid) state
        current_q = fake_quantize(current, formats.current)
        d_theta = formats.theta.scale / 2 if not hard_reset else 0.0
        # v' - v = (beta_q - beta)(v - I_q) + (1 - beta)(I_q - I) [- z (theta_q - theta)] + rounding of v'
        bound = ((state.v.abs() + current_q.abs()) * d_beta + (current_q - current).abs() + formats.v.scale / 2
                 + state.z * d_theta + 1e-6)
        inside = ref.v.abs() < formats.v.max_value  # saturation aside
        assert ((fixed.v - ref.v).abs() <= bound)[inside].all()
        state = fixed


def test_fixed_point_lif_trace_stays_within_the_accumulated_bound():
    params, formats, currents = lif_case(2, thresh=100.0)  # never fires: a pure leaky integrator
    formats = formats._replace(v=FixedPoint(8, 4))
    beta = torch.sigmoid(params.leak)
    beta_q, _ = quantized_lif_parameters(params, formats)
    fixed = ref = LIFState(torch.zeros(2, 6, 5, 5), torch.zeros(2, 6, 5, 5))
    bound = torch.zeros(())
    for current in currents:
        step = ((fixed.v.abs() + fake_quantize(current, formats.current).abs()) * (beta_q - beta).abs()
                + formats.current.scale / 2 + formats.v.scale / 2)
        _, fixed = fixed_point_lif_step(current, fixed, params, formats)
        _, ref = lif_step(current, ref, params)
        bound = bound * beta + step + 1e-6  # errors decay with the leak
        assert ((fixed.v - ref.v).abs() <= bound).all()
        assert not fixed.z.any()


def test_fixed_point_lif_is_the_documented_integer_arithmetic():
    params, formats, currents = lif_case(3)
    beta, theta = quantized_lif_parameters(params, formats)
    c, v, t, b = formats
    beta_q = (beta * 2**b.frac).round().long()
    theta_q = (theta * 2**t.frac).round().long()
    f = max(v.frac, c.frac)
    state = LIFState(torch.zeros(2, 6, 5, 5), torch.zeros(2, 6, 5, 5))
    for current in currents:
        _, state_new = fixed_point_lif_step(current, state, params, formats)
        i_q = (fake_quantize(current, c) * 2**c.frac).round().long()
        v_q = (state.v * 2**v.frac).round().long()
        z = state.z.long()
        acc = beta_q * v_q * (1 - z) * 2 ** (f - v.frac) + (2**b.frac - beta_q) * i_q * 2 ** (f - c.frac)
        shift = b.frac + f - v.frac
        expected_v = torch.clamp(torch.round(acc.double() / 2**shift), v.qmin, v.qmax)  # half to even
        assert torch.equal(state_new.v * 2**v.frac, expected_v.float())
        # the threshold on its own grid against the exact accumulator
        assert torch.equal(state_new.z, (acc.double() * 2**t.frac > theta_q.double() * 2 ** (b.frac + f)).float())
        state = state_new


def test_leak_grid_is_narrowed_to_keep_the_accumulator_exact():
    formats = lif_formats(choose_format(100.0, 8), choose_format(0.01, 8), 1e-6, 0.005, 8, 8)
    assert accumulator_bits(formats) <= EXACT_ACCUMULATOR_BITS
    assert formats.beta.frac < choose_format(1e-6, 8, signed=False).frac


def test_the_threshold_keeps_a_fine_grid_when_the_potential_grid_is_coarse():
    coarse = choose_format(40.0, 4)  # potentials up to 40 in 4 bits: steps of 8
    formats = lif_formats(coarse, coarse, 0.02, 1.0, 8, 4)
    assert formats.theta.scale == 1 / 8  # thresholds up to 1.0 in 4 unsigned bits
    params = LIFParameters(leak=torch.full((1, 1, 1), -4.0), thresh=torch.full((1, 1, 1), 0.8))
    _, theta = quantized_lif_parameters(params, formats)
    assert float(theta) == 0.75


# ------------------------------------------------------------------------------------------ layers, models


def test_quantized_lif_layer_follows_the_float_layer_within_the_rounding_bounds():
    model, _ = quantized("LIFFireNet_short", channels=4)
    layer = model.layers()["G1"]  # recurrent: x and z through one integer convolution
    config = QuantConfig(bits=8, activation_bits=16, state_bits=16, leak_bits=16)
    twin = quantize_model(model, default_model_formats(model, config)).layers()["G1"]
    x = (torch.rand(1, 4, *RES) > 0.6).float()
    z = (torch.rand(1, 4, *RES) > 0.8).float()
    scale = weight_scale(torch.cat([layer.ff.weight.flatten(1), layer.rec.weight.flatten(1)], 1), 8)
    inputs = 9 * 8  # 3x3 kernels over 4 + 4 binary input channels
    bound = inputs * scale.view(1, -1, 1, 1) / 2 + twin.formats.current.scale / 2
    assert ((twin.current(x, z) - layer.current(x, z)).abs() <= bound + 1e-6).all()
    state = LIFState(torch.zeros(1, 4, *RES), z)
    float_z, _ = layer(x, state)
    fixed_z, _ = twin(x, state)
    assert (float_z == fixed_z).float().mean() > 0.95


def test_quantized_gru_with_fine_grids_matches_the_float_gru():
    torch.manual_seed(0)
    gru = ConvGRU(3, 4)
    wide = FixedPoint(16, 10)
    formats = GRUFormats(wide, FixedPoint(16, 15), wide, wide, wide, FixedPoint(16, 16, False), FixedPoint(16, 15), 8)
    twin = QuantizedGRU(gru, formats)
    x, state = torch.randn(1, 3, 6, 6), gru.init_state(1, 6, 6)
    qstate = state
    for _ in range(4):
        h, state = gru(x, state)
        qh, qstate = twin(x, qstate)
        assert (h - qh).abs().max() < 0.05


def test_quantize_model_leaves_the_float_model_unchanged_and_refuses_other_layers():
    model, qmodel = quantized()
    assert is_quantized(qmodel) and not is_quantized(model)
    assert sorted(qmodel.state_dict()) == sorted(model.state_dict())
    plif = build_model("PLIFFireNet", base_num_channels=4)
    with pytest.raises(ValueError, match="cannot be quantised; quantisable layers"):
        quantize_model(plif, {n: None for n in plif.layers()})


def test_batchnorm_folding_keeps_the_function():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.Sequential(nn.Conv2d(6, 3, 1), nn.BatchNorm2d(3, affine=False)))
    for bn in (net[1], net[3][1]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3.0)
    net[1].weight.data.uniform_(0.5, 2.0)
    net.eval()
    x = torch.randn(2, 2, 7, 7)
    before = net(x)
    assert fold_batchnorm(net) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)


def test_gradients_reach_weights_leaks_and_thresholds_through_the_fake_quantisers():
    _, qmodel = quantized(bits=6)  # (uncalibrated 4-bit grids silence the deep layers of this random model)
    qmodel.train()
    state, loss = None, 0.0
    x = torch.poisson(torch.full((2, 2, *RES), 1.0))
    for _ in range(3):
        flow, state = qmodel(x, state)
        loss = loss + flow.square().mean() + flow.mean()
    loss.backward()
    for name in ("head", "G1", "R1a", "G2"):
        layer = qmodel.layers()[name]
        grads = [layer.ff.weight.grad, layer.leak.grad, layer.thresh.grad]
        if layer.recurrent:
            grads.append(layer.rec.weight.grad)
        for g in grads:
            assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    assert qmodel.layers()["pred"].conv.weight.grad.abs().sum() > 0


def test_gradients_flow_through_the_quantized_ann():
    torch.manual_seed(0)
    model = build_model("FireNet", base_num_channels=4)
    cfg = QuantConfig(bits=6)
    qmodel = quantize_model(model, default_model_formats(model, cfg))
    flow, state = qmodel(torch.poisson(torch.full((1, 2, *RES), 1.0)))
    flow, _ = qmodel(torch.poisson(torch.full((1, 2, *RES), 1.0)), state)
    flow.abs().sum().backward()
    layers = qmodel.layers()
    assert layers["G1"].update_gate.weight.grad.abs().sum() > 0 and layers["head"].conv.weight.grad.abs().sum() > 0


def test_quantized_checkpoint_round_trip_and_size(tmp_path):
    model, qmodel = quantized(bits=6)
    path = save_quantized(tmp_path / "q.pt", qmodel, QuantInfo("ptq", QuantConfig(bits=6), ("a.h5",), {}))
    loaded, info = load_quantized(path)
    assert info.mode == "ptq" and info.config.bits == 6 and info.files == ("a.h5",)
    x = torch.poisson(torch.full((1, 2, *RES), 0.7))
    torch.testing.assert_close(loaded(x)[0], qmodel(x)[0], rtol=0, atol=0)
    assert not is_quantized(load_model(None, path))  # the float model reads it too
    assert model_size(qmodel).packed < model_size(qmodel).fp32_packed


def test_model_size_follows_the_bit_width():
    model = build_model("LIFFireNet")
    sizes = {bits: model_size(quantize_model(model, default_model_formats(model, QuantConfig(bits=bits))))
             for bits in (8, 4)}
    params = sum(p.numel() for p in model.parameters())  # 74818 (+ 2 x 7 x 32 leaks and thresholds)
    assert sizes[8].fp32_packed == 4 * sum(v.numel() for v in model.state_dict().values())
    assert params < sizes[8].packed < 1.1 * params  # one byte per weight, scales and biases on top
    assert 0.5 * params < sizes[4].packed < 0.6 * params
    assert sizes[8].serialized < sizes[8].fp32_serialized / 3


# ------------------------------------------------------------------------------------------------ data


@pytest.fixture
def sim_dataset(tmp_path, monkeypatch):
    """A stand-in for the simulated dataset: two training and one test recording; ensure_default_dataset is
    redirected to it."""
    train = tuple(recording(tmp_path / "train" / f"train_{i}.h5", i) for i in range(2))
    test = (recording(tmp_path / "test" / "test_0.h5", 9),)
    paths = DatasetPaths(tmp_path, train, test, tmp_path / "manifest.json")
    monkeypatch.setattr("eventflow.simulate.ensure_default_dataset", lambda profile="quick", progress=False: paths)
    return paths


def test_calibration_reads_only_the_training_split(sim_dataset, monkeypatch):
    opened = []
    real_file = h5py.File

    def spy(name, *args, **kwargs):
        opened.append(str(name))
        return real_file(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", spy)
    model, _ = quantized()
    calibration = calibrate_on_training_split(model, "quick", max_windows=5, lanes=2)
    train = {str(p.resolve()) for p in sim_dataset.train}
    read = {str(Path(p).resolve()) for p in opened}
    assert read == train  # every training recording, and nothing else
    assert not read & {str(p.resolve()) for p in sim_dataset.test}
    assert set(calibration.files) == train and calibration.windows == 5
    assert calibration.get("head.input").integer and calibration.get("G1.input").integer
    qmodel = ptq(model, calibration, QuantConfig(bits=8))
    assert qmodel.layers()["head"].formats.input.frac == 0


def test_qat_finetuning_trains_the_quantized_copy(sim_dataset):
    model, qmodel = quantized("LIFFireNet_short", bits=4)
    config = load_train_config("quick_snn", overrides={
        "loader.resolution": list(RES), "loader.batch_size": 2, "data.window": 200, "data.window_loss": 400,
        "model.name": "LIFFireNet_short", "model.base_num_channels": 4})
    before = qmodel.layers()["G1"].ff.weight.detach().clone()
    result = finetune(qmodel, config, steps=2)
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
    assert not torch.equal(before, qmodel.layers()["G1"].ff.weight)
    assert torch.equal(model.layers()["G1"].ff.weight, before)  # the float model is a separate copy


# ------------------------------------------------------------------------------------------ integer ONNX


@pytest.mark.parametrize("name,bits,requantize", [("LIFFireNet", 8, False), ("LIFFireNet_short", 4, True)])
def test_int8_onnx_matches_the_quantized_model(name, bits, requantize):
    from eventflow.quantize.onnx_int8 import FLOW_TOLERANCE, Int8Stepper, export_int8_onnx, state_to_integers

    _, qmodel = quantized(name, bits=bits, requantize_output=requantize)
    if requantize:
        pred = qmodel.layers()["pred"]
        pred.formats = pred.formats._replace(output=FixedPoint(bits, bits + 4))
    stepper = Int8Stepper(export_int8_onnx(qmodel, height=RES[0], width=RES[1]))
    state_onnx, state_torch, spikes = stepper.zero_state(1, *RES), None, 0
    for _ in range(5):
        x = torch.poisson(torch.full((1, 2, *RES), 0.8))
        with torch.no_grad():
            flow, state_torch = qmodel(x, state_torch)
        flow_onnx, state_onnx = stepper(x.numpy(), state_onnx)
        expected = state_to_integers(qmodel, state_torch)
        for key, value in expected.items():
            np.testing.assert_array_equal(state_onnx[key], value, err_msg=key)
        spikes += sum(int(v.sum()) for k, v in expected.items() if k.endswith("_z"))
        assert np.abs(flow_onnx - flow.numpy()).max() <= FLOW_TOLERANCE
    assert spikes > 0


def test_int8_export_refuses_what_it_cannot_represent():
    from eventflow.export.onnx import UnsupportedModelError
    from eventflow.quantize.onnx_int8 import export_int8_onnx

    model, _ = quantized()
    with pytest.raises(UnsupportedModelError, match="quantised FireNet-family"):
        export_int8_onnx(model, height=8, width=8)
    _, wide = quantized(state_bits=12)
    with pytest.raises(UnsupportedModelError, match="int8"):
        export_int8_onnx(wide, height=8, width=8)


def test_integer_conv_is_exact_for_spike_inputs():
    from eventflow.quantize.layers import quantized_conv

    torch.manual_seed(0)
    x = (torch.rand(1, 8, 9, 9) > 0.5).float()
    w = torch.randn(4, 8, 3, 3)
    out = quantized_conv([ConvInput(x, FixedPoint(8, 0), w, 1, 1)], 8, FixedPoint(8, 3))
    scale = weight_scale(w, 8)
    acc = torch.nn.functional.conv2d(x.double(), quantize_weight(w, scale, 8).double(), padding=1)
    expected = torch.clamp(torch.round(acc * (scale.double() / 2**-3).view(1, -1, 1, 1)), -128, 127) * 2**-3
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=0)


def test_lif_formats_of_the_default_formats_are_consistent():
    _, qmodel = quantized()
    fmt = qmodel.layers()["G1"].formats
    assert isinstance(fmt.lif, LIFFormats) and fmt.lif.v == fmt.v


def test_cli_quantizes_a_checkpoint_and_exports_onnx(sim_dataset, tmp_path, capsys):
    import json

    from eventflow.cli import main
    from eventflow.models import save_checkpoint

    model, _ = quantized()
    checkpoint = save_checkpoint(tmp_path / "float.pt", model)
    out, onnx_path = tmp_path / "int8.pt", tmp_path / "int8.onnx"
    code = main(["quantize", "--checkpoint", str(checkpoint), "--bits", "8", "--mode", "ptq", "--out", str(out),
                 "--calibration-windows", "3", "--onnx", str(onnx_path), "--height", "16", "--width", "20"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["calibration_files"] == 2 and summary["size_bytes"] < summary["fp32_bytes"] / 2
    qmodel, info = load_quantized(out)
    assert info.mode == "ptq" and info.extra["checkpoint"] == str(checkpoint) and onnx_path.stat().st_size > 0
    assert main(["quantize", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x.onnx")]) == 1


def test_sweep_evaluates_every_variant_and_tabulates_them(sim_dataset, tmp_path, monkeypatch):
    from eventflow.models import save_checkpoint
    from eventflow.quantize.figures import plot_sweep
    from eventflow.quantize.sweep import SweepSettings, int8_aee_loss, markdown_table, run_sweep, sweep_rows

    model, _ = quantized()
    checkpoint = save_checkpoint(tmp_path / "lif.pt", model)
    tiny = load_train_config("quick_snn", overrides={
        "loader.resolution": list(RES), "loader.batch_size": 2, "data.window": 200, "data.window_loss": 400,
        "model.base_num_channels": 4})
    monkeypatch.setattr("eventflow.train.ensure_trained", lambda name, profile, progress=True: checkpoint)
    monkeypatch.setattr("eventflow.train.profile_config", lambda name, profile: tiny)
    real = recording(tmp_path / "real.h5", 5, n=32000, maps=2)
    settings = SweepSettings(models=("LIFFireNet",), bits=(8, 4), calibration_windows=2, qat_steps=1,
                             sim_windows=1, real_windows=1, activity_windows=1)
    result = run_sweep(settings, real_recordings=[real], progress=False)
    rows = sweep_rows(result)
    assert [(r["mode"], r["bits"]) for r in rows] == [("fp32", 32), ("ptq", 8), ("qat", 8), ("ptq", 4), ("qat", 4),
                                                     ("-", None)]
    assert rows[-1]["model"] == "zero flow" and rows[0]["flow change px"] == 0.0
    assert all(r["real FWL"] is not None and r["spike rate"] is not None for r in rows[:-1])
    assert rows[0]["AEE change %"] == 0.0 and rows[1]["size / fp32"] < 0.3 and rows[3]["size B"] < rows[1]["size B"]
    assert set(result.calibration_files["LIFFireNet"]) == {str(p.resolve()) for p in sim_dataset.train}
    assert result.calibrated_on_training_split_only("LIFFireNet")
    assert int8_aee_loss(result) == rows[1]["AEE change %"]
    assert markdown_table(rows).count("\n") == len(rows) + 1 and "| zero flow | - | - |" in markdown_table(rows)
    assert len(plot_sweep(rows).axes) == 4
