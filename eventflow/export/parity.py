"""Parity of an exported step graph in onnxruntime with the PyTorch model over a whole sequence of real events.

Both run window after window from the zero state. Two onnxruntime runs are compared with PyTorch:

- **free-running**: onnxruntime feeds back its own states (deployment);
- **teacher-forced**: every window gets PyTorch's state from before that window, so no difference carries over
  from earlier windows.

The convolutions of the two runtimes sum in different orders, so currents and membrane potentials differ in the
last bits (the neuron update itself is bit-exact, :mod:`eventflow.export.functions`). A spike whose membrane sits
within a float step of its threshold can then flip; in the same window its change reaches the layers downstream
(where it moves currents by a whole synaptic weight, so their flips can sit far from threshold), and in a free run
it can also spread through the state into later windows. The report therefore sorts the teacher-forced flips:

- **primary**: no spiking layer before it (in forward order) differs in that window, so its inputs agreed with
  PyTorch up to rounding; its PyTorch margin ``|v - theta|``, in float steps of the threshold, shows whether it is
  rounding (at most :data:`ROUNDING_STEPS`);
- **downstream**: in a layer after a flipped one, in the same window;

and counts the free-running flips that teacher forcing removes (carried over from earlier windows).

The criteria (export issue): in each of the first 20 windows at least 99 % of flow values within ``1e-4`` of
PyTorch, a mean absolute difference over all windows of at most ``1e-4``, and at most 0.1 % of PyTorch's spikes
differing in the free run; with teacher forcing, every primary flip within :data:`ROUNDING_STEPS` float steps.

Windows: :func:`recording_windows` cuts consecutive 1000-event slices, as the independent checker
(``shared/checks/onnxcheck.py``) does.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from matplotlib.figure import Figure
from torch import Tensor
from tqdm.auto import tqdm

from eventflow.atomic import atomic_path
from eventflow.datasets import iter_recording
from eventflow.export.runtime import OnnxStepper, State
from eventflow.models import build_model, load_model
from eventflow.models.base import FlowModel
from eventflow.neurons.functional import MIN_T0, MIN_T1, MIN_THRESH
from eventflow.paths import data_dir, shared_file
from eventflow.viz import new_figure
from eventflow.windows import WindowSpec

TOLERANCE = 1e-4
EARLY_WINDOWS = 20
MIN_WITHIN = 0.99
MAX_FLIP_FRACTION = 1e-3
#: A primary flip this close to its threshold (float steps of the threshold) counts as rounding.
ROUNDING_STEPS = 64


def demo_inputs(num_windows: int, seed: int = 0) -> tuple[FlowModel, list[Tensor], str]:
    """A model and real-looking windows for the export notebook: the authors' LIF-FireNet and the first
    ``num_windows`` windows of 1000 events of the ECD recording from the shared folder; where that folder is absent,
    LIF-FireNet with random weights (``seed``) and windows of a recording simulated once into ``data/export_demo``
    (:mod:`eventflow.simulate`, 180 x 240, 0.2 s: some 500 k events, enough for about 400 windows). Returns
    ``(model, windows, description)``."""
    weights = shared_file("data", "hagenaars2021_liffirenet.pt")
    recording = shared_file("data", "ecd_shapes_rotation.h5")
    if weights is not None and recording is not None:
        model = load_model("LIFFireNet", weights).eval()
        return model, recording_windows(recording, num_windows), "authors' LIF-FireNet on ECD shapes_rotation"
    from eventflow.simulate.config import SimConfig
    from eventflow.simulate.sequence import simulate_to_h5

    path = data_dir() / "export_demo" / f"sim_180x240_0.2s_seed{seed}.h5"
    if not path.is_file():
        simulate_to_h5(path, SimConfig(resolution=(180, 240), duration=0.2), seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("LIFFireNet").eval()
    return model, recording_windows(path, num_windows), "LIF-FireNet with random weights on a simulated recording"


def recording_windows(path: str | os.PathLike, num_windows: int, window_events: int = 1000) -> list[Tensor]:
    """The first ``num_windows`` windows of ``window_events`` consecutive events of a recording (reference HDF5),
    each as an ``event_cnt`` tensor ``(1, 2, H, W)`` float32 (channel 0 positive, 1 negative counts)."""
    windows = []
    for batch in iter_recording(path, WindowSpec("events", window_events), encodings=("cnt",)):
        windows.append(batch["event_cnt"])
        if len(windows) == num_windows:
            return windows
    raise ValueError(f"{path}: has {len(windows)} windows of {window_events} events, {num_windows} were asked for")


@dataclass
class FlipSite:
    """A flipped spike: window, layer, PyTorch's spike, PyTorch's margin ``v - theta`` (also in float steps of the
    threshold), and whether it is primary (no earlier spiking layer differed in that window)."""

    window: int
    layer: str
    torch_spike: bool
    margin: float
    float_steps: float
    primary: bool = True


@dataclass
class ParityReport:
    """onnxruntime against PyTorch over ``T`` windows (see the module docstring).

    Per window ``(T,)``: ``within`` (fraction of flow values within ``tolerance``), ``mean_abs``, ``max_abs``
    (|flow difference|), the same with teacher forcing (``forced_*``). Per window and spiking layer ``(T, L)``:
    PyTorch's ``spikes`` and the ``flips`` (spikes that differ) free-running and teacher-forced. ``forced_sites``
    lists every teacher-forced flip (primary or downstream), ``first_flip`` the first free-running one.
    """

    model: str
    layers: list[str]
    within: np.ndarray
    mean_abs: np.ndarray
    max_abs: np.ndarray
    spikes: np.ndarray
    flips: np.ndarray
    forced_within: np.ndarray | None = None
    forced_max_abs: np.ndarray | None = None
    forced_flips: np.ndarray | None = None
    forced_sites: list[FlipSite] = field(default_factory=list)
    first_flip: FlipSite | None = None
    tolerance: float = TOLERANCE
    torch_flows: np.ndarray | None = None

    @property
    def windows(self) -> int:
        return len(self.within)

    @property
    def early_within(self) -> float:
        """The worst within-tolerance fraction over the first 20 windows."""
        return float(self.within[:EARLY_WINDOWS].min())

    @property
    def overall_mean_abs(self) -> float:
        """Mean absolute flow difference over all windows (equal-sized windows)."""
        return float(self.mean_abs.mean())

    @property
    def primary_sites(self) -> list[FlipSite]:
        """The teacher-forced flips whose layer inputs agreed with PyTorch (see the module docstring)."""
        return [site for site in self.forced_sites if site.primary]

    @property
    def carried_over(self) -> int:
        """Free-running flips that teacher forcing removes: differences carried over from earlier windows."""
        if self.forced_flips is None:
            raise ValueError("carried_over needs a teacher-forced run")
        return int(np.clip(self.flips - self.forced_flips, 0, None).sum())

    @property
    def flip_fraction(self) -> float:
        """Free-running flipped spikes / PyTorch's spikes, over all windows and layers (0 without spikes)."""
        total = int(self.spikes.sum())
        return float(self.flips.sum() / total) if total else 0.0

    def checks(self) -> dict[str, bool]:
        """Each criterion of the export issue: holds or not."""
        checks = {
            f"first {min(EARLY_WINDOWS, self.windows)} windows >= {MIN_WITHIN:.0%} within {self.tolerance:g}":
                self.early_within >= MIN_WITHIN,
            f"mean |diff| <= {self.tolerance:g}": self.overall_mean_abs <= self.tolerance,
            f"flipped spikes <= {MAX_FLIP_FRACTION:.1%}": self.flip_fraction <= MAX_FLIP_FRACTION,
        }
        if self.forced_flips is not None:
            checks[f"teacher-forced primary flips within {ROUNDING_STEPS} float steps"] = all(
                site.float_steps <= ROUNDING_STEPS for site in self.primary_sites)
        return checks

    @property
    def passed(self) -> bool:
        return all(self.checks().values())

    def summary(self) -> str:
        """A few lines: the figures and the verdict."""
        lines = [
            f"{self.model}: onnxruntime vs PyTorch over {self.windows} windows",
            f"  flow: worst within-{self.tolerance:g} fraction over the first {min(EARLY_WINDOWS, self.windows)} "
            f"windows {self.early_within:.4f}, mean |diff| {self.overall_mean_abs:.2e}, max |diff| "
            f"{self.max_abs.max():.2e}",
            f"  spikes: {int(self.flips.sum())} of {int(self.spikes.sum())} differ free-running "
            f"({self.flip_fraction:.2e})",
        ]
        if self.first_flip is not None:
            f = self.first_flip
            lines.append(f"  first flip: window {f.window}, {f.layer}, PyTorch margin {f.margin:.2e} "
                         f"({f.float_steps:.1f} float steps)")
        if self.forced_flips is not None:
            primary = self.primary_sites
            worst = max((site.float_steps for site in primary), default=0.0)
            lines.append(f"  teacher-forced: {int(self.forced_flips.sum())} spikes differ: {len(primary)} primary "
                         f"(largest PyTorch margin {worst:.1f} float steps), {len(self.forced_sites) - len(primary)} "
                         f"downstream of them in the same window; {self.carried_over} free-running flips were "
                         f"carried over from earlier windows; max |flow diff| {self.forced_max_abs.max():.2e}")
        lines.append(f"  parity holds: {self.passed}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-friendly figures (no flows)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "torch_flows":
                continue
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, FlipSite):
                value = dataclasses.asdict(value)
            elif f.name == "forced_sites":
                value = [dataclasses.asdict(s) for s in value]
            out[f.name] = value
        out.update(early_within=self.early_within, overall_mean_abs=self.overall_mean_abs,
                   flip_fraction=self.flip_fraction, passed=self.passed)
        return out


def _thresholds(layer: torch.nn.Module, state: dict[str, Tensor]) -> Tensor:
    """The threshold a spiking layer compared its new membrane with (broadcasts to ``(B, C, H, W)``)."""
    if layer.neuron in ("lif", "plif"):
        return layer.thresh.clamp_min(MIN_THRESH)
    adapt = state["a"] if layer.neuron == "alif" else state["pt"]
    return layer.t0.clamp_min(MIN_T0) + layer.t1.clamp_min(MIN_T1) * adapt


def _flip_sites(window: int, layer_name: str, layer: torch.nn.Module, torch_state: dict[str, Tensor],
                ort_z: np.ndarray, primary: bool = True) -> list[FlipSite]:
    z = torch_state["z"].numpy()
    where = np.nonzero(z != ort_z)
    if not where[0].size:
        return []
    theta = np.broadcast_to(_thresholds(layer, torch_state).detach().numpy(), z.shape)[where]
    margin = torch_state["v"].numpy()[where] - theta
    steps = np.abs(margin) / np.spacing(np.abs(theta).astype(np.float32))
    return [FlipSite(window, layer_name, bool(s), float(m), float(k), primary)
            for s, m, k in zip(z[where], margin, steps)]


def _compare_flows(a: np.ndarray, b: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float((diff <= tolerance).mean()), float(diff.mean()), float(diff.max())


def run_parity(model: FlowModel, onnx_model: onnx.ModelProto | str | os.PathLike, windows: Sequence[Tensor], *,
               teacher_forced: bool = True, threads: int | None = None,
               custom_op_library: str | os.PathLike | None = None, keep_flows: bool = False,
               tolerance: float = TOLERANCE, progress: bool = False) -> ParityReport:
    """Run PyTorch and onnxruntime over ``windows`` from the zero state and compare them.

    Args:
        model: the PyTorch model the graph was exported from (run under ``torch.no_grad``, CPU).
        onnx_model: the exported graph (:func:`eventflow.export.onnx.export_onnx`) or its path.
        windows: ``event_cnt`` tensors ``(B, num_bins, H, W)`` float32, in order (:func:`recording_windows`).
        teacher_forced: also run every window from PyTorch's state (one more onnxruntime step per window).
        threads: onnxruntime intra-op threads (None: its default).
        custom_op_library: a native library of the ``eventflow`` operators to register
            (:mod:`eventflow.export.ort_library`).
        keep_flows: keep PyTorch's flows ``(T, B, 2, H, W)`` in the report (``torch_flows``).
        progress: show a progress bar.
    """
    if not windows:
        raise ValueError("run_parity: no windows given")
    stepper = OnnxStepper(onnx_model, threads=threads, custom_op_library=custom_op_library)
    b, _, h, w = windows[0].shape
    spec = [s.name for s in model.state_spec(b, h, w)]
    if spec != stepper.state_names:
        raise ValueError(f"run_parity: the graph's states {stepper.state_names} are not the model's {spec} (was it "
                         f"exported from {model.config.name}?)")
    layers = [info.name for info in model.spiking_layers()]
    prefixes = {name: name.replace(".", "_") for name in layers}

    def layer_state(flat: dict[str, Tensor], name: str) -> dict[str, Tensor]:
        cls = model.get_submodule(name).State
        return {f: flat[f"{prefixes[name]}_{f}"] for f in cls._fields}

    rows: dict[str, list] = {k: [] for k in ("within", "mean_abs", "max_abs", "spikes", "flips", "forced_within",
                                             "forced_max_abs", "forced_flips", "flows")}
    forced_sites: list[FlipSite] = []
    first_flip = None
    torch_state = None
    ort_state: State = stepper.zero_state(b, h, w)
    with torch.no_grad():
        for k, x in enumerate(tqdm(windows, desc="parity", disable=not progress)):
            before = (stepper.zero_state(b, h, w) if torch_state is None
                      else {n: t.numpy() for n, t in zip(spec, model.flatten_state(torch_state))})
            flow, torch_state = model(x, torch_state)
            flat = dict(zip(spec, model.flatten_state(torch_state)))
            ort_flow, ort_state = stepper(x.numpy(), ort_state)
            within, mean_abs, max_abs = _compare_flows(ort_flow, flow.numpy(), tolerance)
            rows["within"].append(within)
            rows["mean_abs"].append(mean_abs)
            rows["max_abs"].append(max_abs)
            if keep_flows:
                rows["flows"].append(flow.numpy().copy())
            spikes, flips = [], []
            for name in layers:
                z = flat[f"{prefixes[name]}_z"]
                ort_z = ort_state[f"{prefixes[name]}_z"]
                spikes.append(int(z.ne(0).sum()))
                flips.append(int((z.numpy() != ort_z).sum()))
                if first_flip is None and flips[-1]:
                    first_flip = _flip_sites(k, name, model.get_submodule(name), layer_state(flat, name), ort_z)[0]
            rows["spikes"].append(spikes)
            rows["flips"].append(flips)
            if teacher_forced:
                forced_flow, forced_state = stepper(x.numpy(), before)
                within, _, max_abs = _compare_flows(forced_flow, flow.numpy(), tolerance)
                rows["forced_within"].append(within)
                rows["forced_max_abs"].append(max_abs)
                forced = []
                for name in layers:  # forward order: a flip is primary if no earlier layer flipped
                    sites = _flip_sites(k, name, model.get_submodule(name), layer_state(flat, name),
                                        forced_state[f"{prefixes[name]}_z"], primary=not any(forced))
                    forced_sites.extend(sites)
                    forced.append(len(sites))
                rows["forced_flips"].append(forced)

    def floats(key: str) -> np.ndarray | None:
        return np.asarray(rows[key], np.float64) if rows[key] else None

    def counts(key: str) -> np.ndarray | None:  # (T, L)
        return np.asarray(rows[key], np.int64).reshape(len(windows), len(layers)) if rows[key] else None

    return ParityReport(
        model=model.config.name, layers=layers, within=floats("within"), mean_abs=floats("mean_abs"),
        max_abs=floats("max_abs"), spikes=counts("spikes"), flips=counts("flips"),
        forced_within=floats("forced_within"), forced_max_abs=floats("forced_max_abs"),
        forced_flips=counts("forced_flips"), forced_sites=forced_sites, first_flip=first_flip,
        tolerance=tolerance, torch_flows=np.stack(rows["flows"]) if keep_flows else None)


def save_torch_flows(report: ParityReport, path: str | os.PathLike) -> Path:
    """Write PyTorch's flows as ``flow_raw`` ``(T, B, 2, H, W)`` to an ``.npz`` (the layout of ``eventflow infer``
    that ``shared/checks/onnxcheck.py`` reads); the report must have been made with ``keep_flows=True``."""
    if report.torch_flows is None:
        raise ValueError("save_torch_flows: the report holds no flows; run run_parity(..., keep_flows=True)")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, flow_raw=report.torch_flows)
    return path


def plot_parity(report: ParityReport) -> Figure:
    """Parity over time: the within-tolerance fraction, the flow differences and the flipped spikes per window."""
    t = np.arange(1, report.windows + 1)
    fig = new_figure(1, 3, panel_size=(4.2, 3.0))
    ax_within, ax_diff, ax_flips = fig.axes
    ax_within.plot(t, report.within, "o-", ms=3, label="free-running")
    if report.forced_within is not None:
        ax_within.plot(t, report.forced_within, "x--", ms=3, label="teacher-forced")
    ax_within.axhline(MIN_WITHIN, color="0.5", lw=0.8, ls=":")
    ax_within.set(xlabel="window", ylabel=f"fraction within {report.tolerance:g}", ylim=(0.98, 1.001),
                  title="flow values within tolerance")
    ax_within.legend(fontsize=8)
    floor = 1e-12  # zero differences drawn at the floor of the log axis
    ax_diff.semilogy(t, np.maximum(report.mean_abs, floor), "o-", ms=3, label="mean |diff|")
    ax_diff.semilogy(t, np.maximum(report.max_abs, floor), "s-", ms=3, label="max |diff|")
    if report.forced_max_abs is not None:
        ax_diff.semilogy(t, np.maximum(report.forced_max_abs, floor), "x--", ms=3, label="max |diff|, forced")
    ax_diff.axhline(report.tolerance, color="0.5", lw=0.8, ls=":")
    ax_diff.set(xlabel="window", ylabel="|flow difference| (tanh units)", title="flow difference")
    ax_diff.legend(fontsize=8)
    ax_flips.plot(t, report.flips.sum(axis=1), "o-", ms=3, label="free-running")
    if report.forced_flips is not None:
        ax_flips.plot(t, report.forced_flips.sum(axis=1), "x--", ms=3, label="teacher-forced")
    top = max(1, int(report.flips.sum(axis=1).max()),
              0 if report.forced_flips is None else int(report.forced_flips.sum(axis=1).max()))
    ax_flips.set_ylim(-0.05 * top, 1.1 * top)
    per_window = report.spikes.sum(axis=1).mean()
    ax_flips.set(xlabel="window", ylabel="spikes that differ", title=f"spike flips (of ~{per_window:.0f} per window)")
    ax_flips.legend(fontsize=8)
    fig.suptitle(f"{report.model}: onnxruntime vs PyTorch")
    return fig
