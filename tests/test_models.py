"""The model zoo: registry, parameter counts of the paper, the state interface, activity and errors."""

from __future__ import annotations

import pytest
import torch

from eventflow.models import MODEL_REGISTRY, FlowOutput, ModelConfig, build_model, model_config
from eventflow.neurons.functional import LIFState

# Trainable parameters at C = 32 (reference doc table; the rest computed from the reference classes).
PARAMETER_COUNTS = {
    "FireNet": 148_450,
    "RNNFireNet": 93_154,
    "FireFlowNet": 56_162,
    "LeakyFireNet": 93_378,
    "LeakyFireFlowNet": 56_386,
    "LIFFireNet": 74_818,
    "PLIFFireNet": 75_266,
    "ALIFFireNet": 74_818,
    "XLIFFireNet": 74_818,
    "LIFFireFlowNet": 56_386,
    "LIFFireNet_short": 56_258,
    "LIFFireFlowNet_short": 37_826,
    "EVFlowNet": 14_128_552,
    "RecEVFlowNet": 32_932_072,
    "RNNRecEVFlowNet": 23_531_752,
    "LeakyRecEVFlowNet": 23_536_200,
    "SpikingRecEVFlowNet": 20_400_840,
    "PLIFRecEVFlowNet": 20_409_736,
    "ALIFRecEVFlowNet": 20_400_840,
    "XLIFRecEVFlowNet": 20_400_840,
}
FIRENETS = [n for n, s in MODEL_REGISTRY.items() if s.family == "firenet"]
UNETS = [n for n, s in MODEL_REGISTRY.items() if s.family == "evflownet"]


def test_registry_holds_every_model_of_the_paper_and_the_derivative():
    assert set(MODEL_REGISTRY) == set(PARAMETER_COUNTS)
    assert MODEL_REGISTRY["RecEVFlowNet"].label == "GRU-EV-FlowNet"
    assert MODEL_REGISTRY["SpikingRecEVFlowNet"].label == "LIF-EV-FlowNet"


@pytest.mark.parametrize("name", list(PARAMETER_COUNTS))
def test_trainable_parameter_counts_match_the_reference(name, monkeypatch):
    # the orthogonal initialisation of the big GRU gates is slow and does not change the count
    monkeypatch.setattr(torch.nn.init, "orthogonal_", lambda w, gain=1: w)
    assert build_model(name).num_parameters() == PARAMETER_COUNTS[name]


def test_compact_variants_with_eight_channels():
    model = build_model("LIFFireNet_short", base_num_channels=8)
    assert model.num_parameters() == 3_698
    assert [layer.name for layer in model.spiking_layers()] == ["head", "G1", "R1a", "G2", "R2a"]
    assert build_model("LIFFireFlowNet_short", base_num_channels=8).num_parameters() == 2_546


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'LIFNet'; valid names: FireNet, RNNFireNet"):
        build_model("LIFNet")


def test_default_activations_are_filled_in_per_family():
    assert build_model("FireNet").config.activations == ("relu", None)
    assert build_model("LIFFireNet").config.activations == ("arctanspike", "arctanspike")
    assert build_model("LIFFireNet", activations=["superspike", "mgspike"]).G1.surrogate == "mgspike"


def test_neuron_settings_reach_every_layer_and_do_not_leak_between_models():
    # the reference shares one class-level kwargs dict between layers and instances; we only keep its effect
    torch.manual_seed(0)
    lif = build_model("LIFFireNet", spiking_neuron={"thresh": (0.8, 0.1), "hard_reset": False, "act_width": 5.0})
    for info in lif.spiking_layers():
        layer = lif.get_submodule(info.name)
        assert not layer.hard_reset and float(layer.act_width) == 5.0 and layer.thresh.std() > 0.01
    fresh = build_model("LIFFireNet")
    assert all(fresh.get_submodule(i.name).hard_reset for i in fresh.spiking_layers())
    assert torch.all(fresh.head.thresh == 0.8)
    build_model("FireNet")  # an ANN after an SNN still builds


def test_neuron_keys_are_checked_against_the_neurons_of_the_model():
    with pytest.raises(ValueError, match="ALIFFireNet: spiking_neuron.thresh does not apply to ConvALIF"):
        build_model("ALIFFireNet", spiking_neuron={"thresh": (0.8, 0.1)})
    with pytest.raises(ValueError, match="FireNet: ConvLayer layers take no spiking_neuron settings"):
        build_model("FireNet", spiking_neuron={"leak": (-4.0, 0.1)})
    with pytest.raises(ValueError, match="ConvGRU layers have a fixed nonlinearity"):
        build_model("FireNet", activations=["relu", "tanh"])
    with pytest.raises(ValueError, match="need a surrogate name"):
        build_model("LIFFireNet", activations=["arctanspike", None])
    assert build_model("LeakyFireNet", spiking_neuron={"leak": (-2.0, 0.0)}).head.leak.mean() == -2.0


def test_config_validation():
    with pytest.raises(ValueError, match="unknown key 'kernel'"):
        model_config({"name": "LIFFireNet", "kernel": 3})
    with pytest.raises(ValueError, match="encoding must be one of 'cnt', 'voxel'"):
        model_config("LIFFireNet", encoding="list")
    voxel = build_model("LIFFireNet", encoding="voxel", num_bins=5)
    assert voxel.head.ff.in_channels == 5
    assert isinstance(voxel.config, ModelConfig)


def test_equal_seeds_give_equal_weights():
    torch.manual_seed(3)
    a = build_model("PLIFFireNet", base_num_channels=4).state_dict()
    torch.manual_seed(3)
    b = build_model("PLIFFireNet", base_num_channels=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_prediction_layer_initialisation():
    lif = build_model("LIFFireNet")
    assert lif.pred.conv.weight.abs().max() <= 0.01 and torch.all(lif.pred.conv.bias == 0)
    ann = build_model("FireNet")
    assert ann.pred.conv.weight.abs().max() > 0.01  # PyTorch's default initialisation


# ----------------------------------------------------------------------------------------------- interface


@pytest.mark.parametrize("name", FIRENETS)
def test_firenet_family_interface(name):
    torch.manual_seed(0)
    model = build_model(name, base_num_channels=4).eval()
    x = torch.poisson(torch.full((2, 2, 12, 16), 0.5))
    state = model.init_state(2, 12, 16)
    assert len(state) == len(model.state_names)
    flow, new = model(x, state)
    assert flow.shape == (2, 2, 12, 16) and flow.abs().max() <= 1
    out, new_all = model.forward_all(x, state, record_activity=True)
    assert isinstance(out, FlowOutput) and torch.equal(out.flow, flow) and len(out.flow_scales) == 1
    assert list(out.activity) == ["input", *model.chain, "pred"]
    assert all(torch.equal(a, b) for s, t in zip(new, new_all) for a, b in zip(s, t))
    flow_none, _ = model(x)  # None = the zero state
    assert torch.equal(flow_none, flow)


@pytest.mark.parametrize("name", UNETS)
def test_evflownet_family_interface(name):
    torch.manual_seed(0)
    model = build_model(name, base_num_channels=2).eval()
    x = torch.poisson(torch.full((1, 2, 32, 48), 0.5))
    out, state = model.forward_all(x, record_activity=True)
    assert len(out.flow_scales) == 4 and all(f.shape == (1, 2, 32, 48) for f in out.flow_scales)
    flow, state2 = model(x)
    assert torch.equal(flow, out.flow)
    coarse = out.flow_scales[0]
    assert torch.equal(coarse[..., ::8, ::8].repeat_interleave(8, 2).repeat_interleave(8, 3), coarse)
    assert "preds.3" in out.activity and "resblocks.1.conv2" in out.activity
    flow3, _ = model(x, state)  # a second step with the carried state
    assert flow3.shape == flow.shape


def test_state_spec_names_and_flattening():
    model = build_model("LIFFireNet")
    spec = model.state_spec(1, 180, 240)
    assert [s.name for s in spec[:4]] == ["head_v", "head_z", "G1_v", "G1_z"]
    assert len(spec) == 14 and all(s.shape == (1, 32, 180, 240) for s in spec)
    state = model.init_state(1, 6, 8)
    flat = model.flatten_state(state)
    assert len(flat) == 14
    back = model.unflatten_state(flat)
    assert isinstance(back[0], LIFState) and all(a is b for s, t in zip(state, back) for a, b in zip(s, t))
    with pytest.raises(ValueError, match="expected 14 state tensors, got 13"):
        model.unflatten_state(flat[:-1])
    unet = build_model("SpikingRecEVFlowNet", base_num_channels=2)
    names = [s.name for s in unet.state_spec(1, 32, 32)]
    assert names[:4] == ["encoders_0_v", "encoders_0_z", "recurrent_0_v", "recurrent_0_z"]
    assert "resblocks_1_conv2_z" in names and names[-1] == "decoders_3_z"
    assert dict(unet.state_spec(1, 32, 32))["encoders_3_v"] == (1, 32, 2, 2)
    assert build_model("FireFlowNet").state_names == []


def test_spiking_layers_report_neuron_kinds():
    layers = build_model("XLIFFireNet").spiking_layers()
    assert [(i.name, i.neuron, i.recurrent) for i in layers[:3]] == [
        ("head", "xlif", False), ("G1", "xlif", True), ("R1a", "xlif", False)]
    assert build_model("FireNet").spiking_layers() == []


def test_activity_fractions_and_spike_counts():
    torch.manual_seed(0)
    model = build_model("LIFFireNet", base_num_channels=4, spiking_neuron={"thresh": (0.1, 0.0)}).eval()
    x = torch.poisson(torch.full((2, 2, 8, 8), 1.0))
    out, state = model.forward_all(x, record_activity=True)
    act = out.activity
    assert act["input"].fraction == pytest.approx((x != 0).float().mean().item())
    assert act["input"].spike_count is None and act["pred"].spike_count is None
    z = state[model.state_names.index("G1")].z
    assert act["G1"].spike_count.tolist() == z.sum(dim=(0, 2, 3)).long().tolist()
    assert act["G1"].fraction == pytest.approx(z.mean().item())
    assert act["G1"].spike_count.dtype == torch.int64
    assert model.forward_all(x)[0].activity is None


def test_batch_samples_are_independent_and_reset_per_sample():
    torch.manual_seed(0)
    model = build_model("LIFFireNet", base_num_channels=4, spiking_neuron={"thresh": (0.2, 0.0)}).eval()
    xs = torch.poisson(torch.full((3, 2, 2, 8, 8), 1.0))
    state = model.init_state(2, 8, 8)
    single = model.init_state(1, 8, 8)
    for x in xs:
        flow, state = model(x, state)
        flow1, single = model(x[1:], single)
        torch.testing.assert_close(flow[1:], flow1, rtol=0, atol=1e-6)
    assert any(s.z.sum() > 0 for s in state)
    state = model.reset_state(state, torch.tensor([True, False]))
    assert all(t[0].abs().sum() == 0 for s in state for t in s)
    fresh, _ = model(xs[0][:1])
    flow, _ = model(xs[0], state)
    torch.testing.assert_close(flow[:1], fresh, rtol=0, atol=1e-6)
    detached = model.detach_state(state)
    assert all(not t.requires_grad for s in detached for t in s)


def test_backpropagation_through_time_reaches_every_trainable_parameter():
    torch.manual_seed(0)
    model = build_model("PLIFFireNet", base_num_channels=4, spiking_neuron={"thresh": (0.2, 0.0)})
    state = None
    loss = 0
    for _ in range(3):
        flow, state = model(torch.poisson(torch.full((1, 2, 8, 8), 1.0)), state)
        loss = loss + flow.pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.G1.rec.weight.grad.abs().sum() > 0


def test_input_validation():
    model = build_model("LIFFireNet", base_num_channels=4)
    with pytest.raises(ValueError, match=r"LIFFireNet: expected input \(B, 2, H, W\) \(encoding 'cnt'\), got \(1, 3"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(1, 2, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="expected a state of 7 layers"):
        model(torch.zeros(1, 2, 8, 8), model.init_state(1, 8, 8)[:6])


def test_unet_size_check_and_reference_style_padding():
    model = build_model("EVFlowNet", base_num_channels=2)
    with pytest.raises(ValueError, match="needs H and W divisible by 16, got 30x40; set pad_input=True"):
        model(torch.zeros(1, 2, 30, 40))
    torch.manual_seed(0)
    padded = build_model("EVFlowNet", base_num_channels=2, pad_input=True).eval()
    x = torch.poisson(torch.full((1, 2, 30, 40), 0.5))
    out, _ = padded.forward_all(x)
    assert all(f.shape == (1, 2, 30, 40) for f in out.flow_scales)
    # the same as running the 32x48 zero-padded input (top/left get the odd pixel) and cropping
    full = build_model("EVFlowNet", base_num_channels=2).eval()
    full.load_state_dict(padded.state_dict())
    big = torch.nn.functional.pad(x, (4, 4, 1, 1))
    flow_big, _ = full(big)
    torch.testing.assert_close(out.flow, flow_big[..., 1:31, 4:44], rtol=0, atol=0)
    lif = build_model("SpikingRecEVFlowNet", base_num_channels=2, pad_input=True)
    assert lif.init_state(1, 30, 40)[0].v.shape == (1, 4, 16, 24)  # on the padded 32x48 grid


def test_norm_input_normalises_nonzero_entries_without_touching_the_input():
    model = build_model("LIFFireNet", base_num_channels=4, norm_input=True)
    x = torch.tensor([0.0, 1.0, 2.0, 3.0]).repeat(1, 2, 2, 1)
    before = x.clone()
    out, _ = model.forward_all(x, record_activity=True)
    assert torch.equal(x, before)
    normed = model._check_input(x)
    nz = normed[x != 0]
    assert nz.mean().abs() < 1e-6 and nz.std().item() == pytest.approx(1.0)
    assert torch.all(normed[x == 0] == 0)


def test_lif_backend_switch_on_the_model():
    model = build_model("LIFFireNet", base_num_channels=4)
    with pytest.raises(ValueError, match="unknown LIF backend 'cpp'"):
        model.set_lif_backend("cpp")
    with pytest.raises(ValueError, match="no LIF or PLIF layers"):
        build_model("ALIFFireNet", base_num_channels=4).set_lif_backend("torch")
    model.set_lif_backend("torch")
