"""Training: configs, the step functions (per-lane resets, overfitting a fixed window), the loop (exact
resumption, the NaN guard, checkpoints, metrics), the CLI and ensure_trained. Tiny models on 32x32 recordings."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pytest
import torch

import eventflow.train.loop as loop_module
from eventflow import cli
from eventflow.loss import empty_loss_buffer
from eventflow.models import build_model, load_checkpoint
from eventflow.models.checkpoint import read_checkpoint_info
from eventflow.simulate import SimConfig, simulate_to_h5
from eventflow.train import (
    SilentLayerWarning,
    TrainingDivergedError,
    config_hash,
    ensure_trained,
    load_train_config,
    packaged_configs,
    train,
)
from eventflow.train.backend import apply_lif_backend
from eventflow.train.bench import moving_dots_windows
from eventflow.train.checkpointing import load_train_state
from eventflow.train.optim import build_optimizer
from eventflow.train.step import NonFiniteError, forward_pass, optimisation_step, window_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Three simulated 32x32 recordings of 0.1 s (about 15 windows of 1000 events each)."""
    root = tmp_path_factory.mktemp("tiny_data")
    for i, motion in enumerate(("translation", "rotation", "zoom")):
        simulate_to_h5(root / f"rec{i}.h5", SimConfig(resolution=(32, 32), duration=0.1, motion=motion,
                                                      image=("camera",)), seed=i)
    return root


def tiny_config(data, out, **overrides):
    """quick_snn shrunk: 8 channels, batch 2, 3 passes of 1000 events per loss window: 10 steps per epoch."""
    base = {"data.path": str(data), "data.window": 1000, "data.window_loss": 3000, "loader.resolution": [32, 32],
            "loader.batch_size": 2, "loader.n_epochs": 2, "model.base_num_channels": 8, "run.max_steps": None,
            "run.checkpoint_every": 4, "run.log_every": 2, "run.out_dir": str(out), "run.device": "cpu",
            "run.lif_backend": "torch", "optimizer.lr": 3e-3}
    base.update(overrides)
    return load_train_config("quick_snn", overrides=base)


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------------------ configs


def test_shipped_configs_mirror_the_paper():
    assert {"train_snn", "train_ann", "quick_snn", "quick_ann"} <= set(packaged_configs())
    for name, model in (("train_snn", "LIFFireNet"), ("train_ann", "FireNet")):
        c = load_train_config(name)
        assert c.model.name == model
        assert (c.data.window, c.data.window_loss, c.passes_per_loss) == (1000, 10000, 10)
        assert (c.loader.n_epochs, c.loader.batch_size, c.loader.resolution) == (100, 8, (128, 128))
        assert (c.optimizer.name, c.optimizer.lr, c.loss.clip_grad) == ("Adam", 2e-4, 100.0)
        assert (c.loss.flow_regul_weight, c.loss.compat, c.flow_scaling) == (0.001, "hagenaars2021", 128.0)
        assert c.loader.augment == ("horizontal", "vertical", "polarity")
    assert load_train_config("train_snn").model.spiking_neuron.thresh == (0.8, 0.1)
    assert load_train_config("quick_ann").model.spiking_neuron is None


def test_unknown_key_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("loader:\n  batch_size: 2\n  n_epoch: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown key 'n_epoch' in TrainConfig\.loader") as err:
        load_train_config(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    ({"loader.augment_prob": [0.3, 0.5, 0.5]}, "only 0.5"),
    ({"loader.augment": ["Horizontal"], "loader.augment_prob": [0.5]}, "unknown augmentation 'Horizontal'"),
    ({"loss.compat": "hagenaars"}, "compat"),
    ({"data.window_loss": 10}, "window_loss"),
    ({"data.window": 0.5}, "must be integers"),
    ({"data.mode": "time", "data.window": 0.0, "data.window_loss": 0.05}, r"need 0 < window"),
    ({"data.mode": "time", "data.window": 0.1, "data.window_loss": 0.05}, r"window_loss \(s\)"),
    ({"data.mode": "gt"}, "mode"),
    ({"run.device": "tpu"}, "device"),
    ({"model.name": "LIFFirenet"}, None),
])
def test_invalid_values_are_rejected(overrides, message):
    if message is None:  # the model name is checked when the model is built
        with pytest.raises(ValueError, match="unknown model 'LIFFirenet'"):
            build_model(load_train_config("quick_snn", overrides=overrides).model)
        return
    with pytest.raises(ValueError, match=message):
        load_train_config("quick_snn", overrides=overrides)


@pytest.mark.parametrize("window, window_loss, passes", [(0.005, 0.05, 10), (0.003, 0.01, 4), (0.01, 0.01, 1)])
def test_time_windows_count_passes_despite_float_rounding(window, window_loss, passes):
    c = load_train_config("quick_snn", overrides={"data.mode": "time", "data.window": window,
                                                  "data.window_loss": window_loss})
    assert c.passes_per_loss == passes  # 0.05 / 0.005 = 10.000000000000002 must not give 11


def test_config_hash_ignores_execution_settings():
    c = load_train_config("quick_snn")
    assert config_hash(c) == config_hash(load_train_config(c, overrides={"run.out_dir": "x", "run.device": "cpu"}))
    assert config_hash(c) != config_hash(load_train_config(c, overrides={"optimizer.lr": 1e-3 * 2}))


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ValueError, match="valid names: Adam"):
        build_optimizer("Adamm", [torch.nn.Parameter(torch.zeros(1))], 1e-3)


# --------------------------------------------------------------------------------------------------- the steps


def _state_batch(windows, k, reset):
    batch = dict(windows[k])
    batch["reset"] = torch.tensor(reset)
    return batch


def test_reset_of_one_lane_leaves_the_other_untouched():
    torch.manual_seed(0)
    model = build_model("LIFFireNet", base_num_channels=4, spiking_neuron={"thresh": (0.3, 0.0)})
    windows = moving_dots_windows(2, (16, 16), passes=3, events=200)
    state, buffer = None, empty_loss_buffer()
    for k in range(2):
        state, buffer, _ = forward_pass(model, state, buffer, _state_batch(windows, k, [False, False]))
    assert any(float(s.v[1].detach().abs().sum()) > 0 for s in state)
    kept, kept_buffer, _ = forward_pass(model, state, buffer, _state_batch(windows, 2, [False, False]))
    reset, reset_buffer, _ = forward_pass(model, state, buffer, _state_batch(windows, 2, [True, False]))
    fresh, _, _ = forward_pass(model, None, empty_loss_buffer(), _state_batch(windows, 2, [False, False]))
    for a, b, c in zip(kept, reset, fresh):
        for ta, tb, tc in zip(a, b, c):
            assert torch.equal(tb[1], ta[1])  # lane 1 carried on as if nothing happened
            assert torch.equal(tb[0], tc[0])  # lane 0 started from zeros
    assert [v.tolist() for v in reset_buffer.pass_valid] == [[False, True], [False, True], [True, True]]
    assert [v.tolist() for v in kept_buffer.pass_valid] == [[True, True]] * 3
    # The reference (compat) resets every lane and restarts the loss window.
    compat, compat_buffer, _ = forward_pass(model, state, buffer, _state_batch(windows, 2, [True, False]),
                                            compat="hagenaars2021")
    assert compat_buffer.num_passes == 1
    for a, c in zip(compat, fresh):
        assert all(torch.equal(ta, tc) for ta, tc in zip(a, c))


def test_loss_decreases_when_overfitting_one_window():
    # FireNet: a spiking network at its initialisation barely spikes on 32x32 toys and learns too slowly for a
    # short test; the loop is the same.
    torch.manual_seed(0)
    model = build_model("FireNet", base_num_channels=8)
    windows = [dict(w, reset=torch.tensor([False, False])) for w in moving_dots_windows(2, (32, 32), passes=3,
                                                                                         events=400)]
    optimizer = build_optimizer("Adam", model.parameters(), 3e-3)
    values = []
    for _ in range(20):
        state, buffer = None, empty_loss_buffer()
        for batch in windows:
            state, buffer, _ = forward_pass(model, state, buffer, batch)
        loss = window_loss(buffer, flow_scaling=32.0, flow_regul_weight=0.2, compat=None)
        values.append(optimisation_step(loss, model.parameters(), optimizer, 100.0).loss)
    assert sum(values[-5:]) / 5 < 0.9 * sum(values[:5]) / 5, values


def test_lif_backend_choice():
    model = build_model("LIFFireNet", base_num_channels=4)
    assert apply_lif_backend(model, "auto") in ("cpp", "torch")
    assert apply_lif_backend(model, "torch") == "torch"
    assert apply_lif_backend(build_model("FireNet", base_num_channels=4), "auto") == "torch"
    with pytest.raises(ValueError, match="FireNet has no LIF or PLIF layers"):
        apply_lif_backend(build_model("FireNet", base_num_channels=4), "cpp")
    with pytest.raises(ValueError, match="valid choices: torch, cpp, auto"):
        apply_lif_backend(model, "cuda")


def test_non_finite_gradient_steps_nothing():
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = build_optimizer("Adam", [param], 0.1)
    loss = torch.sqrt(param[0] - 1.0)  # value 0, gradient 1 / (2 sqrt(0)) = inf
    with pytest.raises(NonFiniteError, match="gradient norm is inf"):
        optimisation_step(loss, [param], optimizer, 100.0)
    assert torch.equal(param.detach(), torch.ones(3)) and param.grad is None
    with pytest.raises(NonFiniteError, match="the loss is nan"):
        optimisation_step(param.sum() * float("nan"), [param], optimizer, None)


# ----------------------------------------------------------------------------------------------------- the loop


def test_training_run_writes_checkpoints_and_metrics(tiny_data, tmp_path):
    out = tmp_path / "run"
    result = train(tiny_config(tiny_data, out, **{"run.max_steps": 6}), progress=False)
    assert result.final["step"] == 6 and result.checkpoint == out / "model.pt"
    model, config = load_checkpoint(result.checkpoint)
    assert config.base_num_channels == 8
    info = read_checkpoint_info(result.checkpoint)["metadata"]
    assert info["finished"] and info["step"] == 6
    records = [json.loads(line) for line in result.metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 7))
    assert all(r["grad_norm"] > 0 and r["lr"] == 3e-3 and 0 < r["rsat"] < 2 for r in records)
    assert 0 < result.final["rsat_last"] < 2
    rates = [r for r in records if "spike_rate/G1" in r]
    assert [r["step"] for r in rates] == [2, 4, 6] and all(0 <= r["spike_rate/G1"] <= 1 for r in rates)
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["step", "epoch", "batch", "loss"] and "spike_rate/R2b" in header
    assert load_train_config(out / "config.yaml").model.base_num_channels == 8
    with pytest.raises(ValueError, match="already holds a run"):
        train(tiny_config(tiny_data, out), progress=False)


def test_time_windows_train_and_resume_to_the_same_losses(tiny_data, tmp_path):
    """Passes of 5 ms (the reference loader's time mode): the loop runs, and a resumed run matches."""
    overrides = {"data.mode": "time", "data.window": 0.005, "data.window_loss": 0.015, "run.max_steps": 4}
    full = train(tiny_config(tiny_data, tmp_path / "full", **overrides), progress=False)
    assert full.final["step"] == 4 and all(math.isfinite(v) for v in losses(tmp_path / "full"))
    config = load_train_config(tmp_path / "full" / "config.yaml")
    assert (config.data.mode, config.data.window, config.passes_per_loss) == ("time", 0.005, 3)
    part = tmp_path / "part"
    train(tiny_config(tiny_data, part, **{**overrides, "run.max_steps": 2}), progress=False)
    train(tiny_config(tiny_data, part, **overrides), progress=False, resume=True)
    assert losses(part) == losses(tmp_path / "full")


def test_silent_spiking_layers_are_reported_once(tiny_data, tmp_path):
    """A leak of sigmoid(0) = 0.5 halves every input current: the deep layers never fire, and the run says so
    once per layer; the paper's initialisation (leak -4) keeps every layer firing and raises nothing."""
    overrides = {"run.max_steps": 4, "model.spiking_neuron.leak": [0.0, 0.1]}
    with pytest.warns(SilentLayerWarning) as caught:
        train(tiny_config(tiny_data, tmp_path / "silent", **overrides), progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, SilentLayerWarning)]
    assert len(messages) == 1 and messages[0].startswith("step 2: spiking layer(s) ")
    assert "R2b" in messages[0] and "head" not in messages[0]
    rates = [json.loads(line) for line in (tmp_path / "silent" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["spike_rate/R2b"] < 1e-4 for r in rates if "spike_rate/R2b" in r)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SilentLayerWarning)
        train(tiny_config(tiny_data, tmp_path / "alive", **{"run.max_steps": 4}), progress=False)


def test_init_weights_start_from_a_checkpoint(tiny_data, tmp_path):
    first = train(tiny_config(tiny_data, tmp_path / "first", **{"run.max_steps": 2}), progress=False)
    trained, _ = load_checkpoint(first.checkpoint)
    config = tiny_config(tiny_data, tmp_path / "ft", init_weights=str(first.checkpoint))
    start = loop_module.prepare_model(config, torch.device("cpu"))
    for name, value in trained.state_dict().items():
        assert torch.equal(start.state_dict()[name], value), name
    seeded = loop_module.prepare_model(tiny_config(tiny_data, tmp_path / "x"), torch.device("cpu"))
    assert not torch.equal(seeded.head.ff.weight, start.head.ff.weight)
    wrong = tiny_config(tiny_data, tmp_path / "y", **{"init_weights": str(first.checkpoint),
                                                     "model.base_num_channels": 4})
    with pytest.raises(ValueError, match=r"model\.pt: init_weights do not fit the configured LIFFireNet"):
        loop_module.prepare_model(wrong, torch.device("cpu"))


def test_resume_after_a_crash_reproduces_the_losses_bit_for_bit(tiny_data, tmp_path, monkeypatch):
    steps = 14  # crosses the end of the first epoch (10 steps)
    straight = tmp_path / "straight"
    train(tiny_config(tiny_data, straight, **{"run.max_steps": steps}), progress=False)
    expected = losses(straight)
    assert len(expected) == steps

    crashed = tmp_path / "crashed"
    real_step = loop_module.optimisation_step
    calls = {"n": 0}

    def crash_at_step_7(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # the process dies in the middle of the window after checkpoint 4
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop_module, "optimisation_step", crash_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_data, crashed, **{"run.max_steps": steps}), progress=False)
    monkeypatch.setattr(loop_module, "optimisation_step", real_step)
    assert load_train_state(crashed / "train_state.pt")["position"].step == 4
    assert len(losses(crashed)) == 6  # steps 5, 6 were logged after the checkpoint
    train(tiny_config(tiny_data, crashed, **{"run.max_steps": steps}), progress=False, resume=True)
    assert losses(crashed) == expected
    a, b = (load_checkpoint(p / "model.pt")[0].state_dict() for p in (straight, crashed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="different config"):
        train(tiny_config(tiny_data, crashed, **{"optimizer.lr": 1e-3}), progress=False, resume=True)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "nan"
    real_loss = loop_module.window_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(loop_module, "window_loss", poisoned)
    message = (r"^training stopped at step 6 \(epoch 0, batch 18\): the loss is nan; the last good checkpoint is "
               r".*train_state\.pt \(step 4\)$")
    with pytest.raises(TrainingDivergedError, match=message):
        train(tiny_config(tiny_data, out), progress=False)
    assert load_train_state(out / "train_state.pt")["position"].step == 4
    assert read_checkpoint_info(out / "model.pt")["metadata"]["step"] == 4
    assert len(losses(out)) == 5


def test_cli_train_and_ensure_trained(tiny_data, tmp_path, monkeypatch, capsys):
    config_file = tmp_path / "tiny.yaml"
    from eventflow.train.config import dump_config

    config_file.write_text(dump_config(tiny_config(tiny_data, tmp_path / "unused")))
    out = tmp_path / "cli_run"
    code = cli.main(["train", "--config", str(config_file), "--out", str(out), "--steps", "2", "--no-progress",
                     "--set", "run.log_every=1"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["step"] == 2 and printed["checkpoint"] == str(out / "model.pt")
    assert cli.main(["train", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err

    monkeypatch.setenv("EVENTFLOW_DATA", str(tmp_path / "data"))
    config = tiny_config(tiny_data, tmp_path / "unused", **{"run.max_steps": 2})
    path = ensure_trained("LIFFireNet", config=config, progress=False)
    assert path.parent.parent == tmp_path / "data" / "checkpoints" and path.is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("ensure_trained trained again")

    monkeypatch.setattr(loop_module, "train", no_training)
    assert ensure_trained("LIFFireNet", config=config, progress=False) == path
    shutil.rmtree(path.parent)
