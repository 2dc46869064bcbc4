"""Energy and activity: dense MACs pinned against the reference notes, effective operations by input type,
activity against the reference's golden activity, and the energy arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from eventflow.energy import (
    ActivityReport,
    ConvInputStats,
    ConvOp,
    EnergyConstants,
    conv_macs,
    conv_operations,
    dense_macs,
    energy_estimate,
    energy_table,
    layer_table,
    macs_by_layer,
    mean_spike_rate,
    measure_activity,
)
from eventflow.models import build_model

M = 1_000_000


def test_lif_firenet_dense_macs_per_layer_at_128():
    """Reference notes: head 9.4 M, G1 302 M, each R layer 151 M, G2 302 M, pred 1 M; 1.218 G in all."""
    by_layer = macs_by_layer(conv_operations(build_model("LIFFireNet"), 128, 128))
    assert by_layer == {"head": 9_437_184, "G1": 301_989_888, "R1a": 150_994_944, "R1b": 150_994_944,
                        "G2": 301_989_888, "R2a": 150_994_944, "R2b": 150_994_944, "pred": 1_048_576}
    assert round(by_layer["head"] / M, 1) == 9.4 and round(by_layer["G1"] / M) == 302
    assert round(by_layer["R1a"] / M) == 151 and round(by_layer["pred"] / M) == 1
    total = sum(by_layer.values())
    assert total == 1_218_445_312 and round(total / 1e9, 3) == 1.218


def test_dense_macs_of_the_zoo_match_the_reference_notes():
    assert round(dense_macs(build_model("LIFFireNet"), 256, 256) / 1e9, 2) == 4.87  # 4 x the 128x128 count
    assert dense_macs(build_model("LIFFireNet"), 256, 256) == 4 * 1_218_445_312
    assert dense_macs(build_model("FireNet"), 128, 128) == 2_426_404_864  # 2.43 G: GRU gates on [x, h]
    assert dense_macs(build_model("EVFlowNet"), 128, 128) == 3_269_591_040  # 3.27 G


def test_gru_gates_and_recurrent_convs_are_counted():
    ops = {op.name: op for op in conv_operations(build_model("FireNet"), 16, 16)}
    for gate in ("reset_gate", "update_gate", "out_gate"):
        op = ops[f"G1.{gate}"]
        assert op.in_channels == 64 and op.macs == 16 * 16 * 32 * 64 * 9
    assert ops["G1.reset_gate"].layer == "G1"
    lif = {op.name for op in conv_operations(build_model("LIFFireNet"), 16, 16)}
    assert {"G1.ff", "G1.rec", "G2.rec"} <= lif and "R1a.rec" not in lif


def test_conv_macs_formula_with_stride_and_groups():
    conv = nn.Conv2d(8, 6, kernel_size=(3, 5), stride=2, groups=2)
    assert conv_macs(conv, (7, 9)) == 7 * 9 * 6 * 4 * 3 * 5
    ops = conv_operations(build_model("EVFlowNet", base_num_channels=2), 32, 48)
    first = ops[0]
    assert first.name == "encoders.0.conv" and first.out_hw == (16, 24) and first.macs == 16 * 24 * 4 * 2 * 9


# --------------------------------------------------------------------------------------- effective operations


def _batches(counts: list[torch.Tensor]):
    for k, cnt in enumerate(counts):
        yield {"event_cnt": cnt, "event_mask": (cnt.sum(1, keepdim=True) > 0).float(),
               "reset": torch.tensor([k == 0])}


def test_binary_inputs_count_as_accumulates_and_analog_inputs_as_macs():
    model = build_model("LIFFireNet_short", base_num_channels=4)
    binary = (torch.rand(1, 2, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.25).float()
    report = measure_activity(model, _batches([binary, 2 * binary]))  # counts 0/1, then 0/2
    head = report.conv_inputs["head.ff"]
    density = float(binary.ne(0).float().mean())
    assert head.density == pytest.approx(density)
    assert head.binary_fraction == pytest.approx(0.5)
    macs = report.ops[0].macs
    assert head.eff_acs == pytest.approx(macs * density / 2)  # pass 1: binary input -> ACs
    assert head.eff_macs == pytest.approx(macs * density / 2)  # pass 2: analog input -> MACs
    assert report.conv_inputs["G1.rec"].binary_fraction == 1.0  # its own spikes
    assert report.conv_inputs["pred.conv"].eff_macs == 0.0  # spikes of R2a


def test_ann_inputs_are_analog():
    model = build_model("FireNet", base_num_channels=4)
    cnt = torch.rand(1, 2, 8, 8) * 3
    report = measure_activity(model, _batches([cnt, cnt]))
    est = energy_estimate(report)
    assert est.eff_acs == 0.0 and 0 < est.eff_macs <= est.dense_macs
    assert mean_spike_rate(report) is None


@pytest.mark.golden
def test_activity_matches_the_reference_log(pretrained_liffirenet, golden_npz):
    """Output densities and spike counts of the authors' LIF-FireNet on the first ECD windows, as the reference
    logged them (``log=True`` activity and per-channel spike counts)."""
    from eventflow.models import load_model

    model = load_model("LIFFireNet", pretrained_liffirenet)
    t = 4
    counts = [torch.from_numpy(golden_npz["event_cnt"][k]) for k in range(t)]
    report = measure_activity(model, _batches(counts))
    order = ["input", "head", "G1", "R1a", "R1b", "G2", "R2a", "R2b", "pred"]
    np.testing.assert_allclose([report.layers[n].density for n in order], golden_npz["activity"][:t].mean(0),
                               atol=1e-6)
    spikes = golden_npz["spike_count_per_channel"][:t].sum(0) / (t * 180 * 240)  # (7, 32) per neuron per pass
    for i, name in enumerate(order[1:8]):
        np.testing.assert_allclose(report.layers[name].spike_rate_per_channel.numpy(), spikes[i], atol=1e-9)
    assert report.conv_inputs["head.ff"].eff_macs > 0  # event counts are analog inputs
    rows = layer_table(report)
    assert [r["layer"] for r in rows] == order[1:]


# -------------------------------------------------------------------------------------------------- energy


def test_energy_constants_are_configurable():
    ops = [ConvOp("a", "a", 2, 4, (3, 3), 1, (8, 8), 1000), ConvOp("b", "b", 4, 4, (3, 3), 1, (8, 8), 2000)]
    stats = {"a": ConvInputStats(0.5, 0.0, 500.0, 0.0), "b": ConvInputStats(0.1, 1.0, 0.0, 200.0)}
    report = ActivityReport(1, (8, 8), {}, stats, ops)
    default = energy_estimate(report)
    assert default.dense_macs == 3000
    assert default.dense_energy_uj == pytest.approx(3000 * 4.6e-6)
    assert default.effective_energy_uj == pytest.approx((500 * 4.6 + 200 * 0.9) * 1e-6)
    custom = energy_estimate(report, EnergyConstants(mac_pj=1.0, ac_pj=0.1))
    assert custom.effective_energy_uj == pytest.approx((500 + 20) * 1e-6)


def test_energy_table_compares_snn_and_ann():
    cnt = (torch.rand(1, 2, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.1).float()
    snn, ann = build_model("LIFFireNet", base_num_channels=4), build_model("FireNet", base_num_channels=4)
    rows = energy_table({"LIF-FireNet": (snn, measure_activity(snn, _batches([cnt] * 3))),
                         "FireNet": (ann, measure_activity(ann, _batches([cnt] * 3)))})
    assert [r["model"] for r in rows] == ["LIF-FireNet", "FireNet"]
    assert rows[0]["dense GMAC"] < rows[1]["dense GMAC"]  # GRU gates cost more than LIF convolutions
    assert rows[0]["spikes/neuron"] is not None and rows[1]["spikes/neuron"] is None
    # in the ANN only the binary event input of the head counts as accumulates; every hidden input is analog
    head_acs = 4 * 16 * 16 * 2 * 9 * float(cnt.mean())
    assert rows[1]["eff. GAC"] * 1e9 == pytest.approx(head_acs)
