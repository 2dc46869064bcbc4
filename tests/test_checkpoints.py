"""Checkpoints: the explicit reference key maps, strict loading, our own format, unsafe files refused."""

from __future__ import annotations

import json

import pytest
import torch

from eventflow.models import MODEL_REGISTRY, CheckpointError, build_model, load_checkpoint, load_model, save_checkpoint
from eventflow.models.checkpoint import load_reference_state_dict, read_checkpoint_info

PRETRAINED_KEYS = {  # the authors' LIF-FireNet state_dict (hagenaars2021_liffirenet.pt)
    *(f"{layer}.{p}" for layer in ("head", "G1", "R1a", "R1b", "G2", "R2a", "R2b")
      for p in ("leak", "thresh", "act_width", "ff.weight")),
    "G1.rec.weight", "G2.rec.weight", "pred.conv2d.weight", "pred.conv2d.bias",
}

# A few keys per model as the reference names them (its module nesting), to pin the generated maps.
REFERENCE_KEY_SAMPLES = {
    "FireNet": ["head.conv2d.bias", "G1.update_gate.weight", "R2b.conv2d.weight", "pred.conv2d.bias"],
    "RNNFireNet": ["G2.ff.bias", "G2.rec.weight", "G2.out.weight"],
    "LeakyFireNet": ["head.ff.bias", "head.leak", "G1.out.bias", "G1.leak"],
    "PLIFFireNet": ["R1a.leak_v", "R1a.leak_pt", "R1a.add_pt", "G2.rec.weight", "G2.act_width"],
    "ALIFFireNet": ["head.leak_t", "head.t0", "head.t1", "G1.rec.weight"],
    "EVFlowNet": ["multires_unet.encoders.0.conv2d.weight", "multires_unet.resblocks.1.conv2.bias",
                  "multires_unet.decoders.3.conv2d.weight", "multires_unet.preds.3.conv2d.bias"],
    "RecEVFlowNet": ["multires_unetrec.encoders.2.conv.conv2d.weight",
                     "multires_unetrec.encoders.2.recurrent_block.reset_gate.bias",
                     "multires_unetrec.resblocks.0.conv1.weight", "multires_unetrec.decoders.0.conv2d.bias"],
    "LeakyRecEVFlowNet": ["multires_unetrec.encoders.1.conv.leak",
                          "multires_unetrec.encoders.1.recurrent_block.out.bias",
                          "multires_unetrec.resblocks.1.conv2.ff.weight", "multires_unetrec.decoders.2.conv2d.leak"],
    "SpikingRecEVFlowNet": ["multires_unetrec.encoders.0.conv.ff.weight",
                            "multires_unetrec.encoders.3.recurrent_block.rec.weight",
                            "multires_unetrec.resblocks.1.conv2.thresh", "multires_unetrec.decoders.3.conv2d.act_width",
                            "multires_unetrec.preds.0.conv2d.weight"],
    "XLIFRecEVFlowNet": ["multires_unetrec.decoders.1.conv2d.leak_pt", "multires_unetrec.encoders.0.conv.t1"],
}


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_reference_key_map_is_a_bijection_onto_our_state_dict(name):
    model = build_model(name, base_num_channels=2)
    key_map = model.reference_key_map()
    assert sorted(key_map.values()) == sorted(model.state_dict())
    assert len(set(key_map)) == len(key_map)
    for key in REFERENCE_KEY_SAMPLES.get(name, []):
        assert key in key_map, key
    root = {"firenet": "", "evflownet": "multires_unet"}[MODEL_REGISTRY[name].family]
    assert all(k.startswith(root) for k in key_map)


def test_reference_map_of_lif_firenet_matches_the_published_keys():
    assert set(build_model("LIFFireNet").reference_key_map()) == PRETRAINED_KEYS


def test_pretrained_weights_load_through_the_map(pretrained_liffirenet):
    model = load_model("LIFFireNet", pretrained_liffirenet)
    reference = torch.load(pretrained_liffirenet, weights_only=True)
    assert torch.equal(model.G1.rec.weight, reference["G1.rec.weight"])
    assert torch.equal(model.pred.conv.bias, reference["pred.conv2d.bias"])
    assert float(model.R2b.act_width) == 10.0


def _reference_state_dict(name="LIFFireNet_short", **kw):
    model = build_model(name, base_num_channels=4, **kw)
    return model, {ref: model.state_dict()[ours].clone() for ref, ours in model.reference_key_map().items()}


def test_strict_loading_names_the_key_and_the_source():
    model, sd = _reference_state_dict()
    target = build_model("LIFFireNet_short", base_num_channels=4)
    load_reference_state_dict(target, sd, source="w.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), target.state_dict().values()))
    missing = dict(sd)
    del missing["G1.rec.weight"]
    with pytest.raises(CheckpointError, match="w.pt: missing key 'G1.rec.weight' for LIFFireNet_short"):
        load_reference_state_dict(target, missing, source="w.pt")
    with pytest.raises(CheckpointError, match="w.pt: unexpected key 'R1b.ff.weight'"):
        load_reference_state_dict(target, {**sd, "R1b.ff.weight": sd["R1a.ff.weight"]}, source="w.pt")
    wide = build_model("LIFFireNet_short", base_num_channels=8)
    with pytest.raises(CheckpointError, match=r"w.pt: 'head.leak' has shape \(4, 1, 1\) but LIFFireNet_short needs"):
        load_reference_state_dict(wide, sd, source="w.pt")


def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("PLIFFireNet", base_num_channels=4, spiking_neuron={"hard_reset": False})
    path = save_checkpoint(tmp_path / "run" / "best.pt", model, extra={"epoch": 7, "loss": 0.5})
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.json", "best.pt"]  # no temporary files left
    info = read_checkpoint_info(path)
    assert info["model"]["name"] == "PLIFFireNet" and info["metadata"] == {"epoch": 7, "loss": 0.5}
    assert info["model"]["spiking_neuron"]["hard_reset"] is False
    loaded, config = load_checkpoint(path)
    assert config == model.config and not loaded.G1.hard_reset
    x = torch.poisson(torch.full((1, 2, 8, 8), 1.0))
    assert torch.equal(model(x)[0], loaded(x)[0])
    assert load_model(None, path).config == config
    with pytest.raises(CheckpointError, match="holds a PLIFFireNet, not a LIFFireNet"):
        load_model("LIFFireNet", path)
    with pytest.raises(ValueError, match="carries its own config"):
        load_model("PLIFFireNet", path, base_num_channels=8)


def test_save_checkpoint_rejects_bad_arguments(tmp_path):
    model = build_model("LIFFireNet_short", base_num_channels=2)
    with pytest.raises(ValueError, match=r"end in \.pt"):
        save_checkpoint(tmp_path / "m.pth", model)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_checkpoint(tmp_path / "m.pt", model, extra={"tensor": torch.zeros(1)})
    assert not (tmp_path / "m.pt").exists()
    with pytest.raises(ValueError, match="config is for LIFFireNet but the model is a LIFFireNet_short"):
        save_checkpoint(tmp_path / "m.pt", model, config=build_model("LIFFireNet").config)


def test_load_model_detects_plain_state_dicts_of_either_format(tmp_path):
    model, ref_sd = _reference_state_dict("ALIFFireNet")
    torch.save(ref_sd, tmp_path / "ref.pt")
    torch.save(model.state_dict(), tmp_path / "own.pt")
    for file in ("ref.pt", "own.pt"):
        loaded = load_model("ALIFFireNet", tmp_path / file, base_num_channels=4)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ValueError, match="holds no config; give the model name"):
        load_model(None, tmp_path / "ref.pt")
    del ref_sd["R1b.leak_v"]
    torch.save(ref_sd, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"partial.pt: missing key 'R1b\.leak_v' for ALIFFireNet \(reference"):
        load_model("ALIFFireNet", tmp_path / "partial.pt", base_num_channels=4)


def test_pickled_modules_and_corrupt_files_are_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a whole pickled module, like mlflow's model.pth
    with pytest.raises(CheckpointError, match=r"module.pth: holds pickled Python objects .*convert it once"):
        load_model("LIFFireNet", tmp_path / "module.pth")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a PyTorch checkpoint"):
        load_model("LIFFireNet", tmp_path / "junk.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt: expected a state_dict"):
        load_model("LIFFireNet", tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="nothing.pt: checkpoint not found"):
        load_model("LIFFireNet", tmp_path / "nothing.pt")


def test_bad_checkpoint_config_json(tmp_path):
    model = build_model("LIFFireNet_short", base_num_channels=2)
    path = save_checkpoint(tmp_path / "m.pt", model)
    info = json.loads((tmp_path / "m.json").read_text())
    info["version"] = 99
    (tmp_path / "m.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="checkpoint version 99 is not supported"):
        load_checkpoint(path)
    (tmp_path / "m.json").write_text("{")
    with pytest.raises(CheckpointError, match="m.json: not valid JSON"):
        load_checkpoint(path)
