"""The bit-width sweep of notebook 04: accuracy, size and activity of quantised LIF-FireNet and FireNet.

For every model (trained by :func:`eventflow.train.ensure_trained` with the sweep's profile; trained here if
missing), :func:`run_sweep` calibrates once on the training split (:func:`~eventflow.quantize.calibrate.
calibrate_on_training_split`), builds the PTQ and QAT variants at every bit width, and evaluates them next to the
float model in one pass over the data (:func:`eventflow.evaluate.evaluate_models`):

- AEE and outliers on the held-out simulated test split (protocol ``mvsec-dt1``: one window per GT interval);
- FWL and RSAT on the real recordings of the shared folder (protocol ``events``: 15000-event windows), where
  present;
- the model size (:func:`~eventflow.quantize.model.model_size`: packed integers and scales; the float model at
  4 bytes per value);
- on the first test sequence (:func:`measure_variants`): how far each variant's flow moves from the float
  model's, and for spiking models the mean spike rate and its change.

:func:`sweep_rows` turns the result into table rows (:func:`markdown_table` for the README),
:func:`eventflow.quantize.figures.plot_sweep` into the figure, :func:`write_sweep` writes both to ``figures/``.
Profiles (:data:`SWEEP_PROFILES`): ``quick`` evaluates a few windows of each set and fine-tunes QAT for a few
steps (minutes on a 2-core CPU); ``full`` uses everything.

>>> sweep_settings("quick").bits
(8, 6, 4)
>>> print(markdown_table([{"model": "LIF-FireNet", "AEE": 1.23456, "size": 77495}]))
| model | AEE | size |
| --- | ---: | ---: |
| LIF-FireNet | 1.235 | 77495 |
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from eventflow.evaluate import ZERO_FLOW, EvalResult, evaluate_models, format_value
from eventflow.inference import iter_batches, plan_recording
from eventflow.models import FlowModel, load_checkpoint, load_model
from eventflow.paths import shared_file
from eventflow.quantize.calibrate import Calibration, calibrate_on_training_split
from eventflow.quantize.config import QuantConfig
from eventflow.quantize.model import fp32_size, model_size, ptq
from eventflow.quantize.qat import qat
from eventflow.windows import WindowSpec

FP32 = "fp32"
MODES = ("ptq", "qat")
#: The authors' pretrained LIF-FireNet (shared folder) as a sweep model: post-training quantisation only (QAT on
#: the simulated data would also adapt it to another domain).
AUTHORS = "LIFFireNet-authors"
#: Model names of the sweep -> labels in tables and figures.
LABELS = {"LIFFireNet": "LIF-FireNet", "FireNet": "FireNet", AUTHORS: "LIF-FireNet (authors)"}


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep covers: ``models`` (registry names trained with ``profile``, and :data:`AUTHORS` for the
    authors' weights where the shared folder has them), ``bits``, ``modes`` (``ptq``, ``qat``); the training
    ``profile`` of the float models and of the simulated data; ``calibration_windows`` (forward passes on the
    training split); ``qat_steps`` (optimisation steps of QAT fine-tuning) and ``qat_bits`` (the widths that get
    a QAT variant; None: all of ``bits``); evaluation windows per test sequence
    (``sim_windows``, GT intervals) and per real recording (``real_windows``), ``sim_sequences`` (None: all);
    ``activity_windows``: test windows over which spike rates are measured."""

    models: tuple[str, ...] = ("LIFFireNet", "FireNet", AUTHORS)
    bits: tuple[int, ...] = (8, 6, 4)
    modes: tuple[str, ...] = MODES
    profile: str = "quick"
    calibration_windows: int = 100
    qat_steps: int = 10
    qat_bits: tuple[int, ...] | None = None
    sim_windows: int | None = None
    sim_sequences: int | None = None
    real_windows: int | None = None
    activity_windows: int = 50

    def __post_init__(self):
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown quantisation mode(s) {unknown}; valid: {', '.join(MODES)}")
        for bits in self.bits:
            QuantConfig(bits=bits)  # validates the width


#: The sweep of each profile: ``quick`` (CPU, minutes), ``medium`` (the quick models and data with more windows
#: and QAT steps: the CPU run behind benchmarks/RESULTS.md, about an hour on 2 cores) and ``full`` (GPU).
SWEEP_PROFILES: dict[str, SweepSettings] = {
    "quick": SweepSettings(profile="quick", calibration_windows=8, qat_steps=2, qat_bits=(4,), sim_windows=2,
                           sim_sequences=2, real_windows=1, activity_windows=2),
    "medium": SweepSettings(profile="quick", calibration_windows=40, qat_steps=10, sim_windows=10, real_windows=5,
                            activity_windows=10),
    "full": SweepSettings(profile="full", calibration_windows=400, qat_steps=300),
}


def sweep_settings(profile: str) -> SweepSettings:
    """The settings of ``profile`` (``quick``, ``medium`` or ``full``)."""
    if profile not in SWEEP_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(SWEEP_PROFILES)}")
    return SWEEP_PROFILES[profile]


class Variant(NamedTuple):
    """One evaluated model: registry ``model`` name, ``mode`` (``fp32``, ``ptq``, ``qat``), ``bits`` (32 for
    fp32), its ``size`` in bytes and the QAT ``losses`` (empty otherwise)."""

    model: str
    mode: str
    bits: int
    size: int
    losses: tuple[float, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.model} {self.mode}" + ("" if self.mode == FP32 else f" {self.bits}")


@dataclass
class SweepResult:
    """Everything :func:`run_sweep` measured: the ``variants``; ``sim`` and ``real`` evaluation results per
    model (``real``: per recording name); ``activity`` (:class:`Activity`) by variant key; the calibration
    ``files`` per model;
    the evaluated ``models`` by variant key; the simulated dataset's ``train_files`` and ``test_files``
    (resolved paths); the ``settings``."""

    settings: SweepSettings
    variants: list[Variant] = field(default_factory=list)
    sim: dict[str, EvalResult] = field(default_factory=dict)
    real: dict[str, dict[str, EvalResult]] = field(default_factory=dict)
    activity: dict[str, Activity] = field(default_factory=dict)
    calibration_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    models: dict[str, FlowModel] = field(default_factory=dict)
    train_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()

    def calibrated_on_training_split_only(self, name: str) -> bool:
        """Whether the calibration of model ``name`` read training recordings only (and at least one)."""
        files = set(self.calibration_files[name])
        return bool(files) and files <= set(self.train_files) and not files & set(self.test_files)

    def model(self, name: str, mode: str, bits: int = 32) -> FlowModel:
        """The evaluated model of variant ``name`` (registry name), ``mode`` (``fp32``, ``ptq``, ``qat``) and
        ``bits``."""
        key = Variant(name, mode, bits, 0).key
        if key not in self.models:
            raise ValueError(f"the sweep has no {key}; it has {', '.join(self.models)}")
        return self.models[key]


class Activity(NamedTuple):
    """What :func:`measure_variants` saw of one model: ``spike_rate`` (spikes per neuron per forward pass over
    every spiking layer; None for an ANN) and ``flow_change_px``, the mean endpoint distance between its flow
    and the reference model's on the pixels with events, in pixels over the ground-truth interval."""

    spike_rate: float | None
    flow_change_px: float


def measure_variants(models: Mapping[str, FlowModel], reference: str, recording: str | Path, windows: int,
                     spec: WindowSpec, device: str = "cpu") -> dict[str, Activity]:
    """Run every model of ``models`` over the first ``windows`` windows of ``recording`` (each with its own
    state) and compare it with ``models[reference]``: :class:`Activity` by key."""
    from eventflow.inference import ModelRunner
    from eventflow.metrics import predicted_displacement

    plan = plan_recording(recording, spec, max_windows=windows)
    runners = {key: ModelRunner(m, device, record_activity=True) for key, m in models.items()}
    layers = {key: [layer.name for layer in m.spiking_layers()] for key, m in models.items()}
    spikes = dict.fromkeys(models, 0.0)
    neurons = dict.fromkeys(models, 0.0)
    change = dict.fromkeys(models, 0.0)
    count = 0
    for batch in iter_batches([plan], 1, encodings=("cnt", "mask")):
        flows = {}
        for key, runner in runners.items():
            flow, _, activity = runner.step(batch)
            flows[key] = predicted_displacement(flow, batch["dt_gt"], batch["dt_input"])  # (1, 2, H, W) px
            for name in layers[key]:
                spikes[key] += float(activity[name].spike_count.sum())
                neurons[key] += activity[name].spike_count.numel() * flow.shape[-2] * flow.shape[-1]
        mask = batch["event_mask"][:, 0].bool()  # (1, H, W)
        for key, disp in flows.items():
            distance = (disp - flows[reference]).norm(dim=1)[mask]
            change[key] += float(distance.mean()) if distance.numel() else 0.0
        count += 1
    if count == 0:
        raise ValueError(f"{recording}: no windows to measure")
    return {key: Activity(spikes[key] / neurons[key] if layers[key] else None, change[key] / count)
            for key in models}


def _quantized_variants(name: str, model: FlowModel, calibration: Calibration, settings: SweepSettings,
                        progress: bool) -> dict[Variant, FlowModel]:
    from eventflow.train import profile_config

    variants: dict[Variant, FlowModel] = {}
    variants[Variant(name, FP32, 32, fp32_size(model))] = model
    modes = ("ptq",) if name == AUTHORS else settings.modes
    for bits in settings.bits:
        config = QuantConfig(bits=bits, calibration_windows=settings.calibration_windows)
        if "ptq" in modes:
            qmodel = ptq(model, calibration, config)
            variants[Variant(name, "ptq", bits, model_size(qmodel).packed)] = qmodel
        if "qat" in modes and (settings.qat_bits is None or bits in settings.qat_bits):
            qmodel, result = qat(model, calibration, config, profile_config(name, settings.profile),
                                 settings.qat_steps, progress=progress)
            variants[Variant(name, "qat", bits, model_size(qmodel).packed, tuple(result.losses))] = qmodel
    return variants


def run_sweep(settings: SweepSettings | str = "quick", real_recordings: Sequence[str | Path] | None = None,
              device: str = "cpu", progress: bool = True) -> SweepResult:
    """Run the sweep of ``settings`` (or a profile name); see the module docstring. ``real_recordings``: the
    recordings for FWL and RSAT (default: the shared folder's, :func:`eventflow.study.shared_recordings`;
    none where it is absent)."""
    from eventflow.simulate import ensure_default_dataset
    from eventflow.study import shared_recordings
    from eventflow.train import ensure_trained

    settings = sweep_settings(settings) if isinstance(settings, str) else settings
    real = shared_recordings() if real_recordings is None else [Path(p) for p in real_recordings]
    dataset = ensure_default_dataset(settings.profile)
    test = list(dataset.test)
    if settings.sim_sequences is not None:
        test = test[:settings.sim_sequences]
    out = SweepResult(settings, train_files=tuple(str(Path(p).resolve()) for p in dataset.train),
                      test_files=tuple(str(Path(p).resolve()) for p in dataset.test))
    for name in settings.models:
        if name == AUTHORS:
            weights = shared_file("data", "hagenaars2021_liffirenet.pt")
            if weights is None:
                print("shared folder absent: the authors' LIF-FireNet is left out of the sweep")
                continue
            model = load_model("LIFFireNet", weights, device)
        else:
            model, _ = load_checkpoint(ensure_trained(name, settings.profile, progress=progress), device)
        model.eval()
        calibration = calibrate_on_training_split(model, settings.profile, settings.calibration_windows,
                                                  progress=progress)
        out.calibration_files[name] = calibration.files
        variants = _quantized_variants(name, model, calibration, settings, progress)
        models = {v.key: m for v, m in variants.items()}
        out.variants += list(variants)
        out.models.update(models)
        out.sim[name] = evaluate_models(models, test, "mvsec-dt1", max_windows=settings.sim_windows,
                                        baselines=True, device=device, progress=progress)
        out.real[name] = {p.stem: evaluate_models(models, [p], "events", max_windows=settings.real_windows,
                                                  baselines=False, device=device, progress=progress) for p in real}
        reference = Variant(name, FP32, 32, 0).key
        out.activity.update(measure_variants(models, reference, test[0], settings.activity_windows,
                                             WindowSpec("gt", 1.0, dt=1), device))
    return out


def _change(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or not math.isfinite(value) or not reference:
        return None
    return 100.0 * (value - reference) / reference


def sweep_rows(result: SweepResult) -> list[dict[str, Any]]:
    """One row per variant: model, mode, bits, AEE [px] and outliers [%] on the simulated test split with the
    AEE change against fp32 [%], FWL and RSAT per real recording, size [bytes] and its ratio to fp32, the mean
    change of the flow against fp32 [px], spike rate and its change [%] (spiking models); then a ``zero flow``
    row (the AEE of predicting nothing; FWL = RSAT = 1), the floor any model must beat."""
    rows = []
    for v in result.variants:
        fp32 = next(u for u in result.variants if u.model == v.model and u.mode == FP32)
        sim = result.sim[v.model].means
        row: dict[str, Any] = {"model": LABELS.get(v.model, v.model), "mode": v.mode, "bits": v.bits,
                               "AEE": sim[v.key]["AEE"], "outliers %": sim[v.key]["outliers_pct"],
                               "AEE change %": _change(sim[v.key]["AEE"], sim[fp32.key]["AEE"])}
        for rec, res in result.real.get(v.model, {}).items():
            row[f"{rec} FWL"] = res.means[v.key]["FWL"]
            row[f"{rec} RSAT"] = res.means[v.key]["RSAT"]
        row["size B"] = v.size
        row["size / fp32"] = v.size / fp32.size
        activity = result.activity[v.key]
        row["flow change px"] = activity.flow_change_px
        row["spike rate"] = activity.spike_rate
        row["spike rate change %"] = _change(activity.spike_rate, result.activity[fp32.key].spike_rate)
        rows.append(row)
    first = result.variants[0].model if result.variants else None
    if first is not None and ZERO_FLOW in result.sim[first].means:
        zero = result.sim[first].means[ZERO_FLOW]
        rows.append({"model": ZERO_FLOW, "mode": "-", "bits": None, "AEE": zero["AEE"],
                     "outliers %": zero["outliers_pct"],
                     **{f"{rec} {m}": 1.0 for rec in result.real.get(first, {}) for m in ("FWL", "RSAT")}})
    return rows


def int8_aee_loss(result: SweepResult, model: str = "LIFFireNet", mode: str = "ptq") -> float:
    """AEE change [%] of the 8-bit ``mode`` variant of ``model`` against fp32 on the simulated test split (the
    acceptance figure: at most 5 % for LIF-FireNet)."""
    sim = result.sim[model].means
    key = Variant(model, mode, 8, 0).key
    if key not in sim:
        raise ValueError(f"the sweep has no {key}; it has {', '.join(sim)}")
    return _change(sim[key]["AEE"], sim[Variant(model, FP32, 32, 0).key]["AEE"])


def markdown_table(rows: Sequence[Mapping[str, Any]], digits: int = 3) -> str:
    """Rows of dicts as a GitHub markdown table (numbers right-aligned with ``digits`` decimals, whole numbers
    as they are, None/NaN as ``-``); columns in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))

    numeric = [any(isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in rows)
               for c in columns]
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(format_value(r.get(c), digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_sweep(rows: Sequence[Mapping[str, Any]], stem: str = "quantization_sweep") -> tuple[Path, Path]:
    """Write the table (``figures/<stem>.md``) and the figure (``figures/<stem>.png``) atomically; returns both
    paths."""
    from eventflow.atomic import atomic_path
    from eventflow.paths import figures_dir
    from eventflow.quantize.figures import plot_sweep
    from eventflow.viz import save_figure

    table = figures_dir() / f"{stem}.md"
    with atomic_path(table) as tmp:
        tmp.write_text(markdown_table(rows) + "\n")
    return table, save_figure(plot_sweep(rows), f"{stem}.png")
