"""eventflow.export: the stateful ONNX export, its onnxruntime runner, parity with PyTorch, the native custom op.

Oracles: the neuron step functions (each ``eventflow.*LIF`` function against ``eventflow.neurons.functional``, bit
for bit), the PyTorch models (every registered model, free-running, at two resolutions and batch sizes), the
authors' LIF-FireNet over 50 windows of real events (our parity report and the independent checker
``shared/checks/onnxcheck.py``), and a deliberately perturbed threshold, whose flips the parity report must find.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from eventflow.cli import main as cli_main
from eventflow.export.functions import DOMAIN, SIGNATURES, neuron_function
from eventflow.export.onnx import OPSET, UnsupportedModelError, export_onnx, plain_operators
from eventflow.export.parity import recording_windows, run_parity, save_torch_flows
from eventflow.export.runtime import OnnxStepper
from eventflow.models import MODEL_REGISTRY, build_model, load_model
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
    lif_step,
    plif_step,
    xlif_step,
)


def small_model(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    if MODEL_REGISTRY[name].family == "evflownet":
        overrides.setdefault("pad_input", True)
    return build_model(name, base_num_channels=4, **overrides).eval()


def random_windows(n: int, batch: int, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, 2, height, width, generator=g) < 0.2).float() * torch.randint(1, 4, (1,), generator=g)
            for _ in range(n)]


def rollout_matches(model, proto, windows, atol=1e-6):
    """Free-running onnxruntime vs PyTorch: flows within ``atol``, every state spike equal."""
    stepper = OnnxStepper(proto)
    b, _, h, w = windows[0].shape
    names = [s.name for s in model.state_spec(b, h, w)]
    state, ort_state = None, stepper.zero_state(b, h, w)
    for x in windows:
        with torch.no_grad():
            flow, state = model(x, state)
        ort_flow, ort_state = stepper(x.numpy(), ort_state)
        np.testing.assert_allclose(ort_flow, flow.numpy(), rtol=0, atol=atol)
        for name, tensor in zip(names, model.flatten_state(state)):
            assert ort_state[name].shape == tuple(tensor.shape), name
            if name.endswith("_z"):
                np.testing.assert_array_equal(ort_state[name], tensor.numpy(), err_msg=name)
            else:
                np.testing.assert_allclose(ort_state[name], tensor.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


# ------------------------------------------------------------------------------------- the neuron functions


def one_node_model(op_type: str, hard_reset: int | None) -> onnx.ModelProto:
    """A model of the single node ``eventflow.<op_type>``, every input and output exposed."""
    sig = SIGNATURES[op_type]
    attrs = {} if hard_reset is None else {"hard_reset": hard_reset}
    node = helper.make_node(op_type, list(sig.inputs), list(sig.outputs), domain=DOMAIN, **attrs)
    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in sig.inputs]
    out = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in sig.outputs]
    graph = helper.make_graph([node], "one", value, out)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
                             ir_version=10, functions=[neuron_function(op_type, OPSET)])


def run_node(op_type: str, hard_reset: int | None, feeds: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(one_node_model(op_type, hard_reset).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    names = list(SIGNATURES[op_type].outputs)
    return dict(zip(names, sess.run(names, {k: v.numpy() for k, v in feeds.items()})))


def neuron_inputs(seed: int = 0, shape=(2, 3, 5, 7)):
    g = torch.Generator().manual_seed(seed)
    c = shape[1]

    def per_channel(mean, std):
        return torch.randn(c, 1, 1, generator=g) * std + mean

    return {
        "current": torch.randn(shape, generator=g), "presyn": torch.rand(shape[0], 1, *shape[2:], generator=g),
        "v": torch.randn(shape, generator=g), "z": (torch.rand(shape, generator=g) > 0.5).float(),
        "trace": torch.rand(shape, generator=g), "leak": per_channel(-1, 1), "leak2": per_channel(-1, 1),
        "add": per_channel(-2, 1), "thresh": per_channel(0.3, 0.3), "t0": per_channel(0.2, 0.3),
        "t1": per_channel(0.5, 0.5),
    }


@pytest.mark.parametrize("hard_reset", [1, 0, None])
def test_lif_function_equals_lif_step_bit_for_bit(hard_reset):
    d = neuron_inputs()
    hard = True if hard_reset is None else bool(hard_reset)  # the function's default is the hard reset
    z, state = lif_step(d["current"], LIFState(d["v"], d["z"]), LIFParameters(d["leak"], d["thresh"], hard_reset=hard))
    out = run_node("LIF", hard_reset, {"current": d["current"], "v_in": d["v"], "z_in": d["z"],
                                       "beta": torch.sigmoid(d["leak"]), "theta": d["thresh"].clamp_min(0.01)})
    assert np.array_equal(out["v_out"], state.v.numpy()) and np.array_equal(out["z_out"], z.numpy())
    assert 0 < z.sum() < z.numel()  # both sides of the threshold exercised


@pytest.mark.parametrize("hard_reset", [1, 0])
def test_plif_alif_xlif_functions_equal_their_steps(hard_reset):
    d = neuron_inputs(seed=1)
    hard = bool(hard_reset)
    t0, t1 = d["t0"].clamp_min(0.01), d["t1"].clamp_min(0.0)

    z, s = plif_step(d["current"], d["presyn"], PLIFState(d["v"], d["z"], d["trace"]),
                     PLIFParameters(d["leak"], d["leak2"], d["add"], d["thresh"], hard_reset=hard))
    out = run_node("PLIF", hard_reset, {
        "current": d["current"], "presyn": d["presyn"], "v_in": d["v"], "z_in": d["z"], "pt_in": d["trace"],
        "beta": torch.sigmoid(d["leak"]), "beta_pt": torch.sigmoid(d["leak2"]), "gain": torch.sigmoid(d["add"]),
        "theta": d["thresh"].clamp_min(0.01)})
    for key, ref in (("v_out", s.v), ("z_out", z), ("pt_out", s.pt)):
        assert np.array_equal(out[key], ref.numpy()), f"PLIF {key}"

    z, s = alif_step(d["current"], ALIFState(d["v"], d["z"], d["trace"]),
                     ALIFParameters(d["leak"], d["leak2"], d["t0"], d["t1"], hard_reset=hard))
    out = run_node("ALIF", hard_reset, {
        "current": d["current"], "v_in": d["v"], "z_in": d["z"], "a_in": d["trace"], "beta": torch.sigmoid(d["leak"]),
        "beta_t": torch.sigmoid(d["leak2"]), "t0": t0, "t1": t1})
    for key, ref in (("v_out", s.v), ("z_out", z), ("a_out", s.a)):
        assert np.array_equal(out[key], ref.numpy()), f"ALIF {key}"

    z, s = xlif_step(d["current"], d["presyn"], XLIFState(d["v"], d["z"], d["trace"]),
                     XLIFParameters(d["leak"], d["leak2"], d["t0"], d["t1"], hard_reset=hard))
    out = run_node("XLIF", hard_reset, {
        "current": d["current"], "presyn": d["presyn"], "v_in": d["v"], "z_in": d["z"], "pt_in": d["trace"],
        "beta": torch.sigmoid(d["leak"]), "beta_pt": torch.sigmoid(d["leak2"]), "t0": t0, "t1": t1})
    for key, ref in (("v_out", s.v), ("z_out", z), ("pt_out", s.pt)):
        assert np.array_equal(out[key], ref.numpy()), f"XLIF {key}"


# ------------------------------------------------------------------------------------------ the graph


def test_lif_firenet_graph_structure_and_shape_inference():
    model = small_model("LIFFireNet")
    proto = export_onnx(model, height=12, width=20)
    onnx.checker.check_model(proto, full_check=True)
    spec = model.state_spec(1, 12, 20)
    assert [i.name for i in proto.graph.input] == ["event_cnt"] + [s.name + "_in" for s in spec]
    assert [o.name for o in proto.graph.output] == ["flow"] + [s.name + "_out" for s in spec]
    lif = [n for n in proto.graph.node if n.domain == DOMAIN]
    assert [n.op_type for n in lif] == ["LIF"] * 7
    assert [n.output[0] for n in lif] == [f"{layer}_v_out" for layer in ("head", "G1", "R1a", "R1b", "G2", "R2a",
                                                                          "R2b")]
    assert all(helper.get_attribute_value(n.attribute[0]) == 1 for n in lif)  # hard_reset
    assert {(f.domain, f.name) for f in proto.functions} == {(DOMAIN, "LIF")}
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", OPSET), (DOMAIN, 1)}
    # folded parameters: beta = sigmoid(leak), theta = max(thresh, 0.01)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    np.testing.assert_array_equal(inits["G1.beta"], torch.sigmoid(model.G1.leak).detach().numpy())
    np.testing.assert_array_equal(inits["G1.theta"], model.G1.thresh.clamp_min(0.01).detach().numpy())
    # symbolic batch, height, width; shape inference through the local functions
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[1].type.tensor_type.shape.dim]
    assert dims == ["batch", 4, "height", "width"]
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in inferred.graph.value_info}
    assert shapes["G1.current"][:2] == ["batch", 4] and len(shapes["pred.conv"]) == 4  # Conv: H, W left unnamed
    static = onnx.shape_inference.infer_shapes(export_onnx(model, height=12, width=20, dynamic=False),
                                               strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in static.graph.value_info}
    assert shapes["G1.current"] == [1, 4, 12, 20] and shapes["pred.conv"] == [1, 2, 12, 20]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["eventflow.model"] == "LIFFireNet" and json.loads(props["eventflow.state"]) == [s.name for s in spec]


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_every_registered_model_matches_pytorch(name):
    model = small_model(name)
    proto = export_onnx(model, height=20, width=36)
    spiking = {info.neuron.upper() for info in model.spiking_layers()}
    assert {n.op_type for n in proto.graph.node if n.domain == DOMAIN} == spiking
    assert len([n for n in proto.graph.node if n.domain == DOMAIN]) == len(model.spiking_layers())
    rollout_matches(model, proto, random_windows(4, 1, 20, 36))


@pytest.mark.parametrize("name", ["LIFFireNet_short", "SpikingRecEVFlowNet", "XLIFFireNet", "RecEVFlowNet"])
def test_dynamic_batch_and_resolution(name):
    """One export runs at other batch sizes and resolutions (padding recomputed in the graph for EV-FlowNet)."""
    model = small_model(name)
    proto = export_onnx(model, height=20, width=36)
    for batch, height, width in ((2, 20, 36), (3, 33, 17)):
        stepper = OnnxStepper(proto)
        expected = {s.name: s.shape for s in model.state_spec(batch, height, width)}
        assert stepper.state_shapes(batch, height, width) == expected
        rollout_matches(model, proto, random_windows(3, batch, height, width, seed=batch))


def test_static_export_has_fixed_shapes():
    model = small_model("SpikingRecEVFlowNet", pad_input=False)
    proto = export_onnx(model, height=32, width=48, dynamic=False)
    for value in list(proto.graph.input) + list(proto.graph.output):
        assert all(d.HasField("dim_value") for d in value.type.tensor_type.shape.dim), value.name
    assert OnnxStepper(proto).state_shapes(1, 32, 48) == {s.name: s.shape for s in model.state_spec(1, 32, 48)}
    rollout_matches(model, proto, random_windows(3, 1, 32, 48))


@pytest.mark.parametrize("name", ["LIFFireNet", "PLIFRecEVFlowNet", "ALIFFireNet"])
def test_plain_operator_option_equals_custom_nodes(name):
    model = small_model(name)
    custom = export_onnx(model, height=20, width=36)
    plain = export_onnx(model, height=20, width=36, custom_ops=False)
    assert not plain.functions and all(n.domain == "" for n in plain.graph.node)
    assert DOMAIN not in {o.domain for o in plain.opset_import}
    assert {n.op_type for n in plain.graph.node} >= {"Greater", "If"}
    onnx.checker.check_model(plain, full_check=True)
    a, b = OnnxStepper(custom), OnnxStepper(plain)
    sa, sb = a.zero_state(1, 20, 36), b.zero_state(1, 20, 36)
    for x in random_windows(3, 1, 20, 36):
        fa, sa = a(x.numpy(), sa)
        fb, sb = b(x.numpy(), sb)
        assert np.array_equal(fa, fb) and all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert plain_operators(custom).graph.node  # the public helper gives the same graph kind


def test_export_writes_a_file_that_loads(tmp_path):
    model = small_model("LIFFireNet_short")
    path = tmp_path / "m.onnx"
    proto = export_onnx(model, path, height=8, width=8)
    assert onnx.load(path) == proto
    flow, state = OnnxStepper(path)(np.zeros((1, 2, 8, 8), np.float32), OnnxStepper(path).zero_state(1, 8, 8))
    assert flow.shape == (1, 2, 8, 8) and not flow.any()  # zero weights of pred bias, zero input: zero flow


# ------------------------------------------------------------------------------------------- bad input


class Unexportable(nn.Module):
    stateful = False
    spiking = False

    def forward(self, x):
        return x


def test_unsupported_models_and_layers_fail_with_a_list_of_what_is_supported():
    with pytest.raises(UnsupportedModelError, match="needs an eventflow FlowModel"):
        export_onnx(nn.Conv2d(2, 2, 3))
    model = small_model("LIFFireNet")
    model.R1a = Unexportable()
    with pytest.raises(UnsupportedModelError, match=r"layer 'R1a' is a Unexportable.*supported layers: SpikingConv"):
        export_onnx(model, height=8, width=8)
    with pytest.raises(UnsupportedModelError, match="norm_input=True"):
        export_onnx(small_model("LIFFireNet", norm_input=True), height=8, width=8)
    with pytest.raises(UnsupportedModelError, match="float32 parameters, got torch.float64"):
        export_onnx(small_model("LIFFireNet").double(), height=8, width=8)
    with pytest.raises(ValueError, match="divisible by 16"):
        export_onnx(small_model("SpikingRecEVFlowNet", pad_input=False), height=180, width=240)
    with pytest.raises(ValueError, match="opset 17 is too old"):
        export_onnx(small_model("LIFFireNet"), height=8, width=8, opset=17)


def test_runner_rejects_mismatched_inputs_with_clear_messages(tmp_path):
    proto = export_onnx(small_model("LIFFireNet_short"), height=8, width=8)
    stepper = OnnxStepper(proto)
    x, state = np.zeros((1, 2, 8, 8), np.float32), stepper.zero_state(1, 8, 8)
    with pytest.raises(ValueError, match=r"state 'head_v' has shape \(1, 4, 8, 8\) but event_cnt \(2, 2, 8, 8\) "
                                         r"needs \(2, 4, 8, 8\)"):
        stepper(np.zeros((2, 2, 8, 8), np.float32), state)
    with pytest.raises(ValueError, match="event_cnt has 3 channels, the model takes 2"):
        stepper(np.zeros((1, 3, 8, 8), np.float32), state)
    with pytest.raises(ValueError, match="event_cnt must be a float32"):
        stepper(x.astype(np.float64), state)
    with pytest.raises(ValueError, match=r"missing: \['G1_v'\]"):
        stepper(x, {k: v for k, v in state.items() if k != "G1_v"})
    with pytest.raises(ValueError, match="'G1_z' must be a float32 array"):
        stepper(x, {**state, "G1_z": state["G1_z"].astype(np.int8)})
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        OnnxStepper(tmp_path / "missing.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(ValueError, match="garbage.onnx: not an ONNX model"):
        OnnxStepper(tmp_path / "garbage.onnx")
    other = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    with pytest.raises(ValueError, match="not an eventflow step graph"):
        OnnxStepper(other)


# --------------------------------------------------------------------------------------------- parity


def test_parity_report_finds_flips_from_a_perturbed_threshold():
    """The report must see spike differences: here the exported G1 thresholds are raised by 4096 float steps, so
    neurons just above them flip, in the free run and (the cause being in the graph) teacher-forced too, each with a
    PyTorch margin below the perturbation."""
    model = small_model("LIFFireNet")
    windows = random_windows(6, 1, 24, 32, seed=3)
    exact = run_parity(model, export_onnx(model, height=24, width=32), windows)
    assert exact.passed and exact.flips.sum() == 0 and exact.forced_flips.sum() == 0 and exact.first_flip is None

    proto = export_onnx(model, height=24, width=32)
    theta = next(i for i in proto.graph.initializer if i.name == "G1.theta")
    value = numpy_helper.to_array(theta)
    # every G1 neuron with v - theta in (0, 4096 float steps] (about 2e-4) falls silent
    theta.CopyFrom(numpy_helper.from_array((value + 4096 * np.spacing(value)).astype(np.float32), "G1.theta"))
    report = run_parity(model, proto, windows)
    assert report.flips.sum() > 0 and report.forced_flips.sum() > 0
    g1 = report.layers.index("G1")
    assert report.forced_flips[:, g1].sum() > 0
    first = report.first_flip
    assert first is not None and first.layer == "G1" and first.torch_spike and 0 < first.float_steps <= 4096
    g1_sites = [s for s in report.forced_sites if s.layer == "G1"]
    assert all(s.primary and s.float_steps <= 4096 for s in g1_sites)
    assert all(not s.primary for s in report.forced_sites if s.layer != "G1")  # downstream of G1's flips
    # flips this far from threshold are not rounding: the report's rounding check fails
    assert max(s.float_steps for s in g1_sites) > 64 and not report.passed
    assert "first flip: window" in report.summary()


@pytest.mark.slow  # 50 windows of LIF-FireNet at 180x240, three runs each plus the checker's: ~30-60 s on one core
def test_lif_firenet_parity_over_50_windows_of_real_events(pretrained_liffirenet, ecd_h5, shared_dir, tmp_path,
                                                           one_thread):
    """The export issue's parity on the authors' weights, by our report and by the independent checker."""
    model = load_model("LIFFireNet", pretrained_liffirenet).eval()
    path = tmp_path / "lif_firenet.onnx"
    export_onnx(model, path)
    windows = recording_windows(ecd_h5, 50)
    report = run_parity(model, path, windows, threads=1, keep_flows=True)
    assert report.windows == 50 and report.spikes.sum() > 1e6
    assert report.early_within >= 0.99 and report.overall_mean_abs <= 1e-4 and report.flip_fraction <= 1e-3, \
        report.summary()
    # a flip left after teacher forcing with inputs equal to PyTorch's must be rounding: next to its threshold
    assert all(site.float_steps <= 64 for site in report.primary_sites), report.summary()
    assert report.passed, report.checks()
    infer = save_torch_flows(report, tmp_path / "infer.npz")
    checker = subprocess.run([sys.executable, str(shared_dir / "checks" / "onnxcheck.py"), str(path), str(ecd_h5),
                              str(infer), "50"], capture_output=True, text=True)
    assert checker.returncode == 0, checker.stdout + checker.stderr
    assert "7 LIF nodes" in checker.stdout


@pytest.mark.slow  # 50 windows of a compact LIF-EV-FlowNet at 180x240 (padded to 192x240): ~20-40 s on one core
def test_second_family_parity_over_50_windows_of_real_events(ecd_h5, one_thread):
    """LIF-EV-FlowNet (16 LIF nodes, multi-scale U-Net with padding and bilinear upsampling), seeded weights; the
    lower thresholds keep every layer of this compact random network spiking."""
    torch.manual_seed(0)
    model = build_model("SpikingRecEVFlowNet", base_num_channels=4, pad_input=True,
                        spiking_neuron={"thresh": (0.3, 0.05)}).eval()
    windows = recording_windows(ecd_h5, 50)
    report = run_parity(model, export_onnx(model), windows, threads=1)
    assert len(report.layers) == 16 and (report.spikes.sum(axis=0) > 1000).all(), report.spikes.sum(axis=0)
    assert report.passed, report.summary()  # includes: every primary teacher-forced flip within 64 float steps


# ------------------------------------------------------------------------------------- the native custom op


@pytest.fixture(scope="module")
def ort_library():
    from eventflow.export.ort_library import OrtHeadersUnavailable, build

    try:
        return build()
    except OrtHeadersUnavailable as err:  # compile errors are failures; only missing headers skip
        pytest.skip(f"onnxruntime headers unavailable: {err}")


@pytest.mark.slow  # the first build fetches the headers' package index (~30 s) and compiles (~10 s); cached after
@pytest.mark.xdist_group("ort_library")
def test_native_custom_op_runs_lif_and_equals_the_function(ort_library, pretrained_liffirenet, ecd_h5, tmp_path,
                                                             one_thread):
    model = load_model("LIFFireNet", pretrained_liffirenet).eval()
    proto = export_onnx(model)
    native = OnnxStepper(proto, threads=1, custom_op_library=ort_library)
    function = OnnxStepper(proto, threads=1)
    # the LIF nodes run as one kernel each, not as the inlined function
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    options.register_custom_ops_library(str(ort_library))
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, {"event_cnt": np.zeros((1, 2, 180, 240), np.float32), **{
        k + "_in": v for k, v in native.zero_state(1, 180, 240).items()}})
    events = json.loads(open(session.end_profiling()).read())
    ops = [e["args"]["op_name"] for e in events if e.get("cat") == "Node" and "op_name" in e.get("args", {})]
    assert ops.count("LIF") >= 7 and "Greater" not in ops
    # bit-identical to the function over real windows, states fed back
    sa, sb = native.zero_state(1, 180, 240), function.zero_state(1, 180, 240)
    for x in recording_windows(ecd_h5, 5):
        fa, sa = native(x.numpy(), sa)
        fb, sb = function(x.numpy(), sb)
        assert np.array_equal(fa, fb) and all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_header_lookup_reports_a_bad_include_folder(tmp_path, monkeypatch):
    from eventflow.export.ort_library import INCLUDE_ENV, OrtHeadersUnavailable, find_headers

    monkeypatch.setenv(INCLUDE_ENV, str(tmp_path))
    with pytest.raises(OrtHeadersUnavailable, match="holds no onnxruntime_cxx_api.h"):
        find_headers()
    (tmp_path / "onnxruntime_cxx_api.h").write_text("// stand-in")
    assert find_headers() == tmp_path


# ------------------------------------------------------------------------------------------ latency, demo


def test_latency_measures_every_backend_and_tabulates():
    from eventflow.export.latency import latency_table, measure_latency

    model = small_model("LIFFireNet_short")
    result = measure_latency(model, random_windows(2, 1, 16, 24), threads=1, repeats=2, warmup=1)
    assert set(result["median_ms"]) == {"torch", "ort", "ort-plain"} and result["resolution"] == [16, 24]
    assert all(v > 0 for v in result["min_ms"].values())
    table = latency_table([result])
    assert table.splitlines()[0].startswith("| model | H x W | threads | torch [ms] | ort [ms]")
    assert "| LIFFireNet_short | 16 x 24 | 1 |" in table
    with pytest.raises(ValueError, match="at least one window"):
        measure_latency(model, [], repeats=1)


def test_demo_inputs_are_the_authors_model_and_real_windows(pretrained_liffirenet, ecd_h5):
    from eventflow.export.parity import demo_inputs

    model, windows, source = demo_inputs(3)
    assert model.config.name == "LIFFireNet" and len(windows) == 3 and "authors'" in source
    assert tuple(windows[0].shape) == (1, 2, 180, 240) and windows[0].sum() == 1000  # 1000 events per window
    with pytest.raises(ValueError, match="windows of 1000 events, 1000 were asked for"):
        recording_windows(ecd_h5, 1000)


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_export_onnx_and_errors(pretrained_liffirenet, ecd_h5, tmp_path, capsys):
    out = tmp_path / "lif.onnx"
    rc = cli_main(["export", "--model", "LIFFireNet", "--checkpoint", str(pretrained_liffirenet), "--format", "onnx",
                   "--out", str(out), "--parity", str(ecd_h5), "--windows", "2"])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file(), text
    assert "7 eventflow neuron nodes" in text and "parity holds: True" in text
    assert cli_main(["export", "--model", "LIFFireNet", "--checkpoint", str(pretrained_liffirenet),
                     "--out", str(tmp_path / "lif.nir")]) == 1
    assert "writes a .onnx file" in capsys.readouterr().err
    plain = tmp_path / "plain.onnx"
    assert cli_main(["export", "--model", "SpikingRecEVFlowNet", "--checkpoint", "none", "--set",
                     "base_num_channels=2", "--pad", "--plain", "--static", "--out", str(plain)]) == 0
    assert not onnx.load(plain).functions
    assert cli_main(["export", "--model", "SpikingRecEVFlowNet", "--checkpoint", "none", "--set",
                     "base_num_channels=2", "--out", str(tmp_path / "x.onnx")]) == 1
    assert "divisible by 16" in capsys.readouterr().err
