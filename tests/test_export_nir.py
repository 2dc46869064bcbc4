"""eventflow.export.nir: LIF-FireNet as a NIR graph, its file round trip, and a forward-Euler simulation of the graph
read back against the PyTorch model (tanh applied to the graph's pre-activation output)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from eventflow.cli import main as cli_main
from eventflow.export.nir import check_round_trip, compare_graphs, export_nir, run_nir_graph, simulation_difference
from eventflow.export.onnx import UnsupportedModelError
from eventflow.export.parity import recording_windows
from eventflow.models import build_model, load_model

LAYERS = ["head", "G1", "R1a", "R1b", "G2", "R2a", "R2b"]


def small(name: str, **overrides):
    torch.manual_seed(0)
    return build_model(name, base_num_channels=4, **overrides).eval()


def test_structure_and_parameter_mapping():
    model = small("LIFFireNet")
    graph = export_nir(model, height=6, width=10)
    expected = {"input", "output", "pred"} | {f"{n}.{k}" for n in LAYERS for k in ("ff", "lif")} | {"G1.rec", "G2.rec"}
    assert set(graph.nodes) == expected
    chain = ["input"] + [f"{n}.{k}" for n in LAYERS for k in ("ff", "lif")] + ["pred", "output"]
    assert set(zip(chain, chain[1:])) | {("G1.lif", "G1.rec"), ("G1.rec", "G1.lif"), ("G2.lif", "G2.rec"),
                                         ("G2.rec", "G2.lif")} == set(graph.edges)
    lif = graph.nodes["G1.lif"]
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (4, 6, 10)
    beta = torch.sigmoid(model.G1.leak).detach().double().numpy()  # (C, 1, 1)
    # forward Euler with dt = 1: dt / tau = 1 - beta, so v_t = beta v + (1 - beta) I
    np.testing.assert_allclose(1 / lif.tau, np.broadcast_to(1 - beta, (4, 6, 10)), rtol=1e-6)
    np.testing.assert_array_equal(lif.v_threshold, np.broadcast_to(model.G1.thresh.clamp_min(0.01).detach().numpy(),
                                                                   (4, 6, 10)))
    assert not lif.v_leak.any() and not lif.v_reset.any() and (lif.r == 1).all()
    np.testing.assert_array_equal(graph.nodes["G1.rec"].weight, model.G1.rec.weight.detach().numpy())
    assert not graph.nodes["head.ff"].bias.any()  # the spiking convolutions have no bias
    np.testing.assert_array_equal(graph.nodes["pred"].bias, model.pred.conv.bias.detach().numpy())
    assert graph.metadata["discretisation"] == "forward Euler"


def test_round_trip_is_exact_and_differences_are_found(tmp_path):
    graph = export_nir(small("LIFFireNet"), tmp_path / "lif.nir", height=6, width=10)
    back = check_round_trip(graph)
    assert compare_graphs(graph, back) == [] and compare_graphs(graph, nir.read(tmp_path / "lif.nir")) == []
    back.nodes["G2.lif"].v_threshold = back.nodes["G2.lif"].v_threshold + 1e-7
    back.edges.remove(("G1.rec", "G1.lif"))
    problems = compare_graphs(graph, back)
    assert problems == ["edges differ", "G2.lif.v_threshold: values differ"]


def test_read_back_graph_simulates_like_pytorch(pretrained_liffirenet, ecd_h5):
    """The authors' LIF-FireNet on a 48x64 crop of 8 real windows: the NIR graph read back from its file, run with
    forward Euler, gives PyTorch's flow after tanh (the part NIR cannot express)."""
    model = load_model("LIFFireNet", pretrained_liffirenet).eval()
    windows = [w[..., 60:108, 80:144] for w in recording_windows(ecd_h5, 8)]  # (1, 2, 48, 64)
    graph = check_round_trip(export_nir(model, height=48, width=64))
    outputs = run_nir_graph(graph, windows)
    state, spikes = None, 0
    for x, out in zip(windows, outputs):
        with torch.no_grad():
            flow, state = model(x, state)
        spikes += int(sum(s.z.sum() for s in state))
        np.testing.assert_allclose(torch.tanh(out).numpy(), flow.numpy(), rtol=0, atol=1e-6)
    assert spikes > 1000  # the crop is active: the comparison exercises the neurons
    assert simulation_difference(model, graph, windows[:3]) <= 1e-6


def test_unsupported_models_are_refused():
    with pytest.raises(UnsupportedModelError, match="ConvPLIF.*no NIR mapping"):
        export_nir(small("PLIFFireNet"), height=4, width=4)
    with pytest.raises(UnsupportedModelError, match="soft reset"):
        export_nir(small("LIFFireNet", spiking_neuron={"hard_reset": False}), height=4, width=4)
    with pytest.raises(UnsupportedModelError, match="EVFlowNetModel is not supported"):
        export_nir(small("SpikingRecEVFlowNet"), height=16, width=16)
    with pytest.raises(UnsupportedModelError, match="layer head is a ConvLayer"):
        export_nir(small("FireNet"), height=4, width=4)
    graph = export_nir(small("LIFFireNet_short"), height=4, width=4)
    graph.nodes["extra"] = nir.Threshold(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="node extra is a Threshold"):
        run_nir_graph(graph, [torch.zeros(1, 2, 4, 4)])


def test_cli_export_nir(tmp_path, capsys):
    out = tmp_path / "lif.nir"
    assert cli_main(["export", "--model", "LIFFireNet_short", "--checkpoint", "none", "--set", "base_num_channels=4",
                     "--format", "nir", "--resolution", "8", "12", "--out", str(out)]) == 0
    assert "NIR graph of LIFFireNet_short" in capsys.readouterr().out
    assert set(nir.read(out).nodes) >= {"G1.rec", "pred"}
    assert cli_main(["export", "--model", "LIFFireNet_short", "--checkpoint", "none", "--format", "nir", "--plain",
                     "--out", str(out)]) == 1
    assert "apply to --format onnx only" in capsys.readouterr().err
