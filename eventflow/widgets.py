"""Interactive explorers for notebooks: scrub through event windows and compare flow predictions.

Two widgets over one data container, :class:`ExplorerData` (per-window arrays, decoupled from the models):

- :class:`FlowExplorer`: a window slider (with a play button), a model drop-down and view toggles: events,
  predicted flow as colour or as arrows, ground-truth flow, endpoint-error map, images of warped events
  before/after warping, spike rates per layer;
- :class:`EventScrubber`: the same without models, for inspecting a data set: events, voxel grid, ground
  truth as colour and as arrows.

Each view is a panel: a title label over an ``ipywidgets.Image`` holding a PNG, which JupyterLab shows with
the stock ipywidgets 8 extension (``jupyterlab_widgets``) and nothing else. Plain images (events, flow
colours, error, warped events, voxel grids) are coloured in NumPy and encoded straight to PNG; arrows and
bar charts go through a small matplotlib Agg figure kept between updates, whose artists only get new data.
Only the panels shown are drawn, once per change of window, model or views, which keeps an update of the
four default views at 256x256 well under 150 ms.

Executed notebooks saved to disk (papermill, ``pytest --nbval``) have no live frontend, so a widget there is
only a placeholder. :meth:`FlowExplorer.show` (and :func:`display_explorer`, :func:`display_scrubber`)
therefore display the widget *and* a static small-multiples PNG (a few windows x the views shown) that
every notebook viewer shows. Nothing here needs a frontend: built in a plain Python process the widgets
still draw their PNGs (``explorer.png("events")``), which is what the tests check. Displaying just the
object (``explorer`` as the last line of a cell) shows the widget alone.

All colour scales (flow magnitude, event counts, error, images of warped events, spike rates) are fixed per
data set, not per window, so colours mean the same thing while scrubbing, and prediction and ground truth
share one flow scale.

>>> import numpy as np
>>> T, H, W = 3, 16, 16
>>> counts = np.zeros((T, 2, H, W))
>>> for t in range(T): counts[t, 0, 4:8, 4 + 2 * t:8 + 2 * t] = 1    # a square moving right
>>> flow = np.zeros((T, 2, H, W)); flow[:, 0] = 2.0                    # 2 px to the right
>>> data = ExplorerData.from_arrays(counts, times=[0.0, 0.1, 0.2], flows={"net": flow}, gt_flow=flow)
>>> explorer = FlowExplorer(data, views=("events", "flow", "gt", "error"))
>>> png = explorer.png("events"); png[:4]
b'\\x89PNG'
>>> explorer.slider.value = 2
>>> explorer.png("events") != png
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import ipywidgets as w
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eventflow import metrics, viz


class ExplorerDataError(ValueError):
    """Arrays that do not fit together into :class:`ExplorerData`; the message is one line."""


# ------------------------------------------------------------------------------------------------- the data


@dataclass(frozen=True, eq=False)  # compared by identity: arrays have no single truth value
class ExplorerData:
    """Per-window arrays for the explorers. ``T`` windows of an ``H x W`` sensor; all flows in pixels of
    displacement over the window, channel 0 = x.

    - ``counts``: ``(T, 2, H, W)`` event counts (channel 0 positive, 1 negative);
    - ``times``: ``(T,)`` time stamp of each window [s] (e.g. its end), non-decreasing;
    - ``flows``: ``{model: (T, 2, H, W)}`` predicted flow;
    - ``gt_flow``: ``(T, 2, H, W)`` ground-truth flow or None; NaN (drawn grey) or, as in MVSEC and the
      AEE, ``(0, 0)`` marks pixels without ground truth (the error view leaves both out);
    - ``iwe_before`` / ``iwe_after``: ``{model: (T, H, W)}`` images of warped events with zero flow and with
      the model's flow (the contrast-maximisation loss sharpens the latter);
    - ``spike_rates``: ``{model: {layer: (T,) or (T, C)}}`` spikes per neuron per forward pass;
    - ``voxels``: ``(T, B, H, W)`` voxel grids or None.

    Build with :meth:`from_arrays`, which converts and checks; direct construction checks too but takes the
    canonical forms only (float arrays, IWE ``(T, H, W)``).
    """

    counts: np.ndarray
    times: np.ndarray
    flows: dict[str, np.ndarray] = field(default_factory=dict)
    gt_flow: np.ndarray | None = None
    iwe_before: dict[str, np.ndarray] = field(default_factory=dict)
    iwe_after: dict[str, np.ndarray] = field(default_factory=dict)
    spike_rates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    voxels: np.ndarray | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_windows(self) -> int:
        return int(self.counts.shape[0])

    @property
    def resolution(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.counts.shape[2]), int(self.counts.shape[3])

    @property
    def models(self) -> list[str]:
        return list(self.flows)

    @classmethod
    def from_arrays(
        cls,
        counts,
        times,
        *,
        flows: Mapping[str, object] | None = None,
        gt_flow=None,
        iwe_before: Mapping[str, object] | None = None,
        iwe_after: Mapping[str, object] | None = None,
        spike_rates: Mapping[str, Mapping[str, object]] | None = None,
        voxels=None,
    ) -> ExplorerData:
        """Convert NumPy arrays, torch tensors or sequences of per-window arrays (shapes as in the class
        docstring) to float32 arrays, sum per-polarity images of warped events ``(T, 2, H, W)`` to
        ``(T, H, W)``, and check that everything agrees (raises :class:`ExplorerDataError`)."""

        def arr(a, name: str, dtype=np.float32) -> np.ndarray:
            try:
                out = _stack(a).astype(dtype)
            except (TypeError, ValueError) as err:
                raise ExplorerDataError(f"ExplorerData: {name} is not a numeric array ({err})") from None
            return out

        def iwe(a, name: str) -> np.ndarray:
            a = arr(a, name)
            return a.sum(axis=1) if a.ndim == 4 and a.shape[1] == 2 else a  # (T, 2, H, W) -> (T, H, W)

        return cls(
            counts=arr(counts, "counts"),
            times=arr(times, "times", np.float64),  # float32 would round seconds-since-epoch stamps
            flows={str(k): arr(v, f"flows[{k!r}]") for k, v in (flows or {}).items()},
            gt_flow=None if gt_flow is None else arr(gt_flow, "gt_flow"),
            iwe_before={str(k): iwe(v, f"iwe_before[{k!r}]") for k, v in (iwe_before or {}).items()},
            iwe_after={str(k): iwe(v, f"iwe_after[{k!r}]") for k, v in (iwe_after or {}).items()},
            spike_rates={
                str(m): {str(layer): arr(r, f"spike_rates[{m!r}][{layer!r}]") for layer, r in per_layer.items()}
                for m, per_layer in (spike_rates or {}).items()
            },
            voxels=None if voxels is None else arr(voxels, "voxels"),
        )


def _stack(a) -> np.ndarray:
    if isinstance(a, list | tuple) and a and hasattr(a[0], "detach"):
        return np.stack([viz.as_numpy(x) for x in a])
    return viz.as_numpy(a)


def _validate(d: ExplorerData) -> None:
    def fail(msg: str) -> None:
        raise ExplorerDataError(f"ExplorerData: {msg}")

    def check(a, name: str, layout: str, shape: tuple, allow_nan: bool = False) -> None:
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            fail(f"{name} must be a float array {layout}; build with ExplorerData.from_arrays")
        if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
            want = ", ".join("*" if s is None else str(s) for s in shape)
            fail(f"{name} has shape {tuple(a.shape)}, expected {layout} = ({want})")
        bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
        if bad.any():
            fail(f"{name} holds {'infinite' if allow_nan else 'non-finite'} values")

    c = d.counts
    if not isinstance(c, np.ndarray) or c.ndim != 4 or c.shape[1] != 2:
        fail(f"counts has shape {getattr(c, 'shape', None)}, expected (T, 2, H, W)")
    t, _, h, wd = c.shape
    if t == 0 or h == 0 or wd == 0:
        fail(f"counts has shape {c.shape}: needs at least one window of at least one pixel")
    check(c, "counts", "(T, 2, H, W)", (t, 2, h, wd))
    if (c < 0).any():
        fail("counts holds negative values (expected per-polarity event counts)")
    check(d.times, "times", "(T,)", (t,))
    if (np.diff(d.times) < 0).any():
        fail("times are not non-decreasing")
    for name, f in d.flows.items():
        check(f, f"flows[{name!r}]", "(T, 2, H, W)", (t, 2, h, wd))
    if d.gt_flow is not None:
        check(d.gt_flow, "gt_flow", "(T, 2, H, W)", (t, 2, h, wd), allow_nan=True)
    if d.voxels is not None:
        check(d.voxels, "voxels", "(T, B, H, W)", (t, None, h, wd))
    for field_name in ("iwe_before", "iwe_after", "spike_rates"):
        unknown = sorted(set(getattr(d, field_name)) - set(d.flows))
        if unknown:
            fail(f"{field_name} names model(s) {unknown} that have no flows (models: {sorted(d.flows)})")
    for field_name in ("iwe_before", "iwe_after"):
        for name, a in getattr(d, field_name).items():
            check(a, f"{field_name}[{name!r}]", "(T, H, W)", (t, h, wd))
    for name, per_layer in d.spike_rates.items():
        for layer, r in per_layer.items():
            label = f"spike_rates[{name!r}][{layer!r}]"
            check(r, label, "(T,) or (T, C)", (t,) if r.ndim == 1 else (t, None))


# ----------------------------------------------------------------------------------------------- colour scales


@dataclass(frozen=True)
class DisplayScales:
    """Full-scale values shared by all windows (99th percentiles, :func:`eventflow.viz.robust_max`).

    ``count`` [events], ``flow`` [px] over ground truth and every prediction, ``error`` [px] endpoint error on
    the pixels the AEE counts (:func:`evaluated_pixels`), ``iwe`` [events] per model over before and after
    warping, ``voxel`` (absolute value), ``spikes`` (largest rate, for a fixed y axis)."""

    count: float
    flow: float
    error: float
    iwe: dict[str, float]
    voxel: float
    spikes: float

    @classmethod
    def of(cls, d: ExplorerData) -> DisplayScales:
        flows = list(d.flows.values()) + ([d.gt_flow] if d.gt_flow is not None else [])
        flow = max([viz.robust_max(_sample(np.hypot(f[:, 0], f[:, 1]))) for f in flows], default=1.0)
        error = 1.0
        if d.gt_flow is not None and d.flows:
            evaluated = evaluated_pixels(d.counts, d.gt_flow)  # (T, H, W)
            errs = [viz.endpoint_error_map(f, d.gt_flow)[evaluated] for f in d.flows.values()]
            error = viz.robust_max(_sample(np.concatenate(errs)))
        iwe = {
            m: viz.robust_max(
                _sample(np.concatenate([src[m].ravel() for src in (d.iwe_before, d.iwe_after) if m in src]))
            )
            for m in set(d.iwe_before) | set(d.iwe_after)
        }
        rates = [float(r.max()) for per_layer in d.spike_rates.values() for r in per_layer.values() if r.size]
        return cls(
            count=viz.robust_max(_sample(d.counts)),
            flow=flow,
            error=error,
            iwe=iwe,
            voxel=viz.robust_max(_sample(d.voxels)) if d.voxels is not None else 1.0,
            spikes=1.1 * max(rates) if rates and max(rates) > 0 else 1.0,  # 10% headroom above the largest bar
        )


def evaluated_pixels(counts: np.ndarray, gt_flow: np.ndarray) -> np.ndarray:
    """``(T, H, W)`` bool: the pixels the average endpoint error counts, as in
    :func:`eventflow.metrics.evaluation_mask` (an event in the window and ground truth other than (0, 0)),
    for counts ``(T, 2, H, W)`` and ground truth ``(T, 2, H, W)`` [px]."""
    events = torch.from_numpy(counts.sum(axis=1, keepdims=True) > 0)  # (T, 1, H, W)
    return metrics.evaluation_mask(events, torch.from_numpy(gt_flow)).numpy()


def _sample(a: np.ndarray, limit: int = 1 << 20) -> np.ndarray:
    """At most about ``limit`` evenly strided entries of ``a`` (percentiles of a large stack stay cheap)."""
    flat = a.ravel()
    return flat[:: max(1, flat.size // limit)]


# --------------------------------------------------------------------------------------------------- the views


@dataclass(frozen=True)
class Frame:
    """What one view shows for one window: a title and either an RGB image ``rgb`` ``(H, W, 3)`` in [0, 1]
    with optional ``arrows`` (a flow ``(2, H, W)`` [px] drawn over it), or ``bars`` (``{series: {layer: rate}}``
    for :func:`eventflow.viz.draw_spike_rates`)."""

    title: str
    rgb: np.ndarray | None = None
    arrows: np.ndarray | None = None
    bars: dict | None = None


@dataclass(frozen=True)
class View:
    """One kind of panel: ``render(data, scales, t, model) -> Frame``; ``needs`` lists what it requires of the
    data (keys of ``_NEEDS``)."""

    label: str
    needs: tuple[str, ...]
    render: Callable[[ExplorerData, DisplayScales, int, str | None], Frame]


def _events(d, s, t, m):
    return Frame(f"events ({int(d.counts[t].sum())})", viz.event_rgb(d.counts[t], max_count=s.count))


def _flow_rgb(flow, s):
    return viz.overlay_colour_wheel(viz.flow_to_rgb(flow, s.flow))


def _pred_flow(d, s, t, m):
    return Frame(f"{m}: flow (wheel rim {s.flow:.3g} px)", _flow_rgb(d.flows[m][t], s))


def _pred_arrows(d, s, t, m):
    return Frame(f"{m}: flow arrows", viz.event_rgb(d.counts[t], max_count=s.count), arrows=d.flows[m][t])


def _gt_flow(d, s, t, m):
    return Frame(f"ground truth (wheel rim {s.flow:.3g} px)", _flow_rgb(d.gt_flow[t], s))


def _gt_arrows(d, s, t, m):
    return Frame("ground-truth arrows", viz.event_rgb(d.counts[t], max_count=s.count), arrows=d.gt_flow[t])


def _error(d, s, t, m):
    err = viz.endpoint_error_map(d.flows[m][t], d.gt_flow[t])  # (H, W) px
    err[~evaluated_pixels(d.counts[t : t + 1], d.gt_flow[t : t + 1])[0]] = np.nan  # only where the AEE looks
    shown = err[np.isfinite(err)]
    mean = f"{shown.mean():.3g} px" if shown.size else "n/a"
    return Frame(f"{m}: EPE on AEE pixels, mean {mean} (0-{s.error:.2g})", viz.scalar_to_rgb(err, "magma", 0, s.error))


def _iwe(which: str):
    def render(d, s, t, m):
        src = getattr(d, f"iwe_{which}")
        title = f"{m}: IWE {which} warping"
        if m not in src:
            return Frame(f"{title}: n/a", np.full(d.resolution + (3,), 0.85))
        return Frame(title, viz.scalar_to_rgb(src[m][t], "gray_r", 0, s.iwe[m]))

    return render


def _spikes(d, s, t, m):
    per_layer = d.spike_rates.get(m, {})
    return Frame(f"{m}: spike rates", bars={m: {layer: r[t] for layer, r in per_layer.items()}})


def _voxels(d, s, t, m):
    tiles = viz.voxel_tiles(d.voxels[t])  # (H, B*W + gaps), NaN in the gaps
    rgb = viz.scalar_to_rgb(tiles, "RdBu_r", -s.voxel, s.voxel, bad=1.0)
    return Frame(f"voxel grid, {d.voxels.shape[1]} bins (red +, blue -)", rgb)


#: The registry of views, in display order. Keys are what ``views=`` takes.
VIEWS: dict[str, View] = {
    "events": View("events", (), _events),
    "flow": View("flow", ("model",), _pred_flow),
    "arrows": View("arrows", ("model",), _pred_arrows),
    "gt": View("GT flow", ("gt",), _gt_flow),
    "gt_arrows": View("GT arrows", ("gt",), _gt_arrows),
    "error": View("error", ("model", "gt"), _error),
    "iwe_before": View("IWE before", ("model", "iwe_before"), _iwe("before")),
    "iwe_after": View("IWE after", ("model", "iwe_after"), _iwe("after")),
    "spikes": View("spike rates", ("model", "spikes"), _spikes),
    "voxel": View("voxel grid", ("voxels",), _voxels),
}

#: What each requirement of a view asks of :class:`ExplorerData`: (is it there?, how to provide it).
_NEEDS: dict[str, tuple[Callable[[ExplorerData], bool], str]] = {
    "model": (lambda d: bool(d.flows), "predicted flows (flows=)"),
    "gt": (lambda d: d.gt_flow is not None, "ground-truth flow (gt_flow=)"),
    "voxels": (lambda d: d.voxels is not None, "voxel grids (voxels=)"),
    "iwe_before": (lambda d: bool(d.iwe_before), "images of warped events (iwe_before=)"),
    "iwe_after": (lambda d: bool(d.iwe_after), "images of warped events (iwe_after=)"),
    "spikes": (lambda d: bool(d.spike_rates), "spike rates (spike_rates=)"),
}


def _missing(d: ExplorerData, view: View) -> list[str]:
    return [_NEEDS[n][1] for n in view.needs if not _NEEDS[n][0](d)]


def draw_frame(ax: Axes, frame: Frame, scales: DisplayScales, arrow_step: int | None = None) -> None:
    """Draw ``frame`` on a matplotlib axes (the static summary): the image with its arrows, or the bars."""
    if frame.bars is not None:
        viz.draw_spike_rates(ax, frame.bars, ylabel="spikes / neuron / pass", ymax=scales.spikes)
    else:
        ax.imshow(frame.rgb, interpolation="nearest")
        if frame.arrows is not None:
            step = viz.arrow_grid(frame.arrows.shape[1:], arrow_step)[2]
            viz.draw_flow_arrows(ax, frame.arrows, step=step, gain=step / scales.flow)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(frame.title, fontsize=8)


class _Panel:
    """One view in the live widget: a title label over an ``ipywidgets.Image``. Plain images are encoded
    straight to PNG; arrows and bars go through a small matplotlib figure kept between updates, whose
    artists get the new data (so an update is one draw, not a rebuild)."""

    def __init__(
        self, name: str, scales: DisplayScales, resolution: tuple[int, int], panel_px: int, arrow_step: int | None
    ):
        self.name, self.scales = name, scales
        self.upscale = max(1, panel_px // max(resolution))  # small sensors are shown enlarged, pixels kept sharp
        self.rows, self.cols, self.step = viz.arrow_grid(resolution, arrow_step)
        self.panel_px = panel_px
        self.title = w.Label()
        self.image = w.Image(format="png", layout=w.Layout(border="1px solid #ddd"))
        self.box = w.VBox([self.title, self.image], layout=w.Layout(margin="0 4px 4px 0"))
        self.box.add_class(f"eventflow-view-{name}")
        self._fig: Figure | None = None
        self._artists: tuple | list = ()  # (image, quiver) or the spike-rate bars, updated in place
        self._bars_layout: tuple | None = None  # (series, layers) the bars were drawn for

    def show(self, frame: Frame) -> None:
        self.title.value = frame.title
        if frame.bars is not None:
            png = self._bars(frame.bars)
        elif frame.arrows is not None:
            png = self._arrows(frame.rgb, frame.arrows)
        else:
            png = viz.rgb_to_png(frame.rgb, max(1, self.panel_px // max(frame.rgb.shape[:2])))
        self.image.value = png

    def _canvas(self, width_px: float, height_px: float) -> Figure:
        fig = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
        FigureCanvasAgg(fig)
        return fig

    def _png(self) -> bytes:
        self._fig.canvas.draw()
        return viz.rgb_to_png(np.asarray(self._fig.canvas.buffer_rgba())[..., :3])

    def _arrows(self, rgb: np.ndarray, flow: np.ndarray) -> bytes:
        uv = viz.sample_arrows(flow, self.rows, self.cols)  # (2, rows, cols)
        if self._fig is None:
            h, wd = rgb.shape[:2]
            self._fig = self._canvas(wd * self.upscale, h * self.upscale)
            ax = self._fig.add_axes((0, 0, 1, 1))
            ax.set_axis_off()
            im = ax.imshow(rgb, interpolation="nearest")
            gain = self.step / self.scales.flow  # fixed per data set: arrow lengths compare across windows
            quiver = ax.quiver(
                self.cols,
                self.rows,
                uv[0],
                uv[1],
                angles="xy",
                scale_units="xy",
                scale=1 / gain,
                color="black",
                width=0.006,
                headwidth=3.5,
                headlength=4,
            )
            self._artists = (im, quiver)
        else:
            im, quiver = self._artists
            im.set_data(rgb)
            quiver.set_UVC(uv[0], uv[1])
        return self._png()

    def _bars(self, bars: dict) -> bytes:
        layout = (tuple(bars), tuple(layer for per_layer in bars.values() for layer in per_layer))
        if self._fig is None:
            self._fig = self._canvas(self.panel_px * 1.2, self.panel_px)
            self._fig.subplots_adjust(left=0.2, bottom=0.25, right=0.97, top=0.95)
            self._fig.add_subplot()
        if layout == self._bars_layout:  # the next window of the same model: new heights only
            viz.update_spike_rates(self._artists, bars)
        else:
            ax = self._fig.axes[0]
            self._artists = viz.draw_spike_rates(ax, bars, ylabel="spikes / neuron / pass", ymax=self.scales.spikes)
            self._bars_layout = layout
        return self._png()


# --------------------------------------------------------------------------------------------------- widgets


class FlowExplorer:
    """Scrub through windows and compare models: slider (with play button) over the ``T`` windows, a model
    drop-down, and a toggle per view (see :data:`VIEWS`; toggles of views whose data is absent are disabled,
    with the reason as tooltip). Each view is a panel ``self.panels[name]`` with a ``.title`` label and an
    ``.image`` (``ipywidgets.Image``, PNG); the whole widget is ``self.widget``, which a notebook shows for
    the object. Only the panels shown are drawn, once per change of window, model or views.

    ``views``: the views shown first (default: those of ``DEFAULT_VIEWS`` the data allows); ``model``: the
    model selected first; ``panel_px``: smallest panel size in pixels (small sensors are enlarged by whole
    factors); ``columns``: panels per row; ``arrow_step``: pixels between arrows.
    """

    VIEW_NAMES: tuple[str, ...] = ("events", "flow", "arrows", "gt", "error", "iwe_before", "iwe_after", "spikes")
    DEFAULT_VIEWS: tuple[str, ...] = ("events", "flow", "gt", "error")
    uses_models = True

    def __init__(
        self,
        data: ExplorerData,
        views: Sequence[str] | None = None,
        model: str | None = None,
        panel_px: int = 256,
        columns: int = 4,
        arrow_step: int | None = None,
    ):
        name = type(self).__name__
        if not isinstance(data, ExplorerData):
            raise TypeError(f"{name} takes an ExplorerData, got {type(data).__name__}")
        if self.uses_models and not data.flows:
            raise ValueError(
                f"{name}: the data holds no predicted flows; pass flows= to ExplorerData.from_arrays "
                "or use EventScrubber"
            )
        self.data = data
        self.scales = DisplayScales.of(data)
        self.arrow_step = arrow_step
        self._available = {n: not _missing(data, VIEWS[n]) for n in self.VIEW_NAMES}
        chosen = self._choose_views(views)

        t_max = data.num_windows - 1
        self.slider = w.IntSlider(
            value=0,
            min=0,
            max=t_max,
            description="window",
            continuous_update=True,
            disabled=t_max == 0,
            readout=True,
            layout=w.Layout(width="420px"),
        )
        self.play = w.Play(value=0, min=0, max=t_max, interval=300, description="play", disabled=t_max == 0)
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.time_label = w.Label()
        models = data.models if self.uses_models else []
        if model is not None and model not in models:
            raise ValueError(f"{name}: unknown model {model!r}; choose from {models}")
        self.model = w.Dropdown(
            options=models,
            value=model or (models[0] if models else None),
            description="model",
            layout=w.Layout(width="280px"),
        )
        self.toggles = {
            n: w.ToggleButton(
                value=n in chosen,
                description=VIEWS[n].label,
                disabled=not self._available[n],
                tooltip=self._tooltip(n),
                layout=w.Layout(width="auto"),
            )
            for n in self.VIEW_NAMES
        }
        self.panels = {n: _Panel(n, self.scales, data.resolution, int(panel_px), arrow_step) for n in self.VIEW_NAMES}
        self.grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat({int(columns)}, max-content)"))
        self.grid.add_class("eventflow-explorer-panels")
        rows = [w.HBox([self.play, self.slider, self.time_label])]
        if self.uses_models:
            rows.append(self.model)
        rows += [w.HBox(list(self.toggles.values()), layout=w.Layout(flex_flow="row wrap")), self.grid]
        self.widget = w.VBox(rows)
        self.widget.add_class("eventflow-explorer")

        self.slider.observe(self._on_change, names="value")
        self.model.observe(self._on_change, names="value")
        for toggle in self.toggles.values():
            toggle.observe(self._on_change, names="value")
        self.render()

    @property
    def views(self) -> tuple[str, ...]:
        """The views shown now, in display order."""
        return tuple(n for n, tg in self.toggles.items() if tg.value and not tg.disabled)

    @property
    def window(self) -> int:
        return int(self.slider.value)

    def png(self, view: str) -> bytes:
        """The PNG a panel shows now (the last drawn one where the view is hidden)."""
        return bytes(self.panels[view].image.value)

    def _choose_views(self, views: Sequence[str] | None) -> tuple[str, ...]:
        name = type(self).__name__
        if views is None:
            return tuple(n for n in self.DEFAULT_VIEWS if self._available[n])
        for n in views:
            if n not in self.VIEW_NAMES:
                raise ValueError(f"{name}: unknown view {n!r}; choose from {list(self.VIEW_NAMES)}")
            if not self._available[n]:
                raise ValueError(f"{name}: view {n!r} needs {', '.join(_missing(self.data, VIEWS[n]))}")
        return tuple(views)

    def _tooltip(self, name: str) -> str:
        missing = _missing(self.data, VIEWS[name])
        return f"needs {', '.join(missing)}" if missing else f"show {VIEWS[name].label}"

    def _on_change(self, _change) -> None:
        self.render()

    def render(self) -> None:
        """Draw the shown panels for the current window, model and views."""
        t = self.window
        self.time_label.value = f"{t + 1}/{self.data.num_windows}   t = {self.data.times[t]:.4f} s"
        model = self.model.value if self.uses_models else None
        views = self.views
        for n in views:
            self.panels[n].show(VIEWS[n].render(self.data, self.scales, t, model))
        self.grid.children = [self.panels[n].box for n in views]

    def static_figure(self, windows: Sequence[int] | None = None, max_windows: int = 4) -> Figure:
        """Small multiples for saved notebooks: one row per window (default: up to ``max_windows`` evenly
        spaced), one column per view shown now, for the selected model, on the widget's colour scales."""
        if windows is None:
            windows = np.unique(np.linspace(0, self.data.num_windows - 1, max_windows).round().astype(int))
        windows = [int(t) for t in windows]
        views = self.views or ("events",)
        h, wd = self.data.resolution
        fig = viz.new_figure(len(windows), len(views), panel_size=(2.6, 2.6 * h / wd + 0.35))
        model = self.model.value if self.uses_models else None
        axes = np.asarray(fig.axes).reshape(len(windows), len(views))
        for row, t in enumerate(windows):
            for col, n in enumerate(views):
                frame = VIEWS[n].render(self.data, self.scales, t, model)
                draw_frame(axes[row, col], frame, self.scales, self.arrow_step)
            axes[row, 0].set_ylabel(f"window {t}, t = {self.data.times[t]:.3f} s", fontsize=8)
        fig.suptitle(f"{type(self).__name__}: {len(windows)} of {self.data.num_windows} windows", fontsize=9)
        return fig

    def show(self, max_windows: int = 4) -> None:
        """Display the live widget and, below it, the static summary (:meth:`static_figure`) as a PNG, which
        stays visible in notebooks executed without a frontend (papermill, nbval)."""
        from IPython.display import Image, display

        display(self.widget)
        display(Image(data=viz.figure_to_png(self.static_figure(max_windows=max_windows), dpi=90), format="png"))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class EventScrubber(FlowExplorer):
    """:class:`FlowExplorer` for data without predictions: events, voxel grid and ground-truth flow (colour and
    arrows) per window, no model drop-down. Same static fallback in :meth:`show`."""

    VIEW_NAMES = ("events", "voxel", "gt", "gt_arrows")
    DEFAULT_VIEWS = ("events", "voxel", "gt", "gt_arrows")
    uses_models = False


def display_explorer(data: ExplorerData, **kwargs) -> FlowExplorer:
    """Build a :class:`FlowExplorer`, :meth:`~FlowExplorer.show` it (widget + static summary), return it."""
    explorer = FlowExplorer(data, **kwargs)
    explorer.show()
    return explorer


def display_scrubber(data: ExplorerData, **kwargs) -> EventScrubber:
    """Build an :class:`EventScrubber`, show it (widget + static summary), return it."""
    scrubber = EventScrubber(data, **kwargs)
    scrubber.show()
    return scrubber


def explorer_data_from_run(run) -> ExplorerData:
    """:class:`ExplorerData` from an evaluation run (:class:`eventflow.evalviz.RunRecord` of
    :func:`eventflow.evalviz.record_run`): the input counts, every method's flow [px] (one drop-down entry each,
    zero flow included), the ground truth where the run has it, the images of warped events before and after
    warping with each flow, and the spike rates of the spiking models."""
    return ExplorerData.from_arrays(
        run.counts,
        run.times,
        flows=run.flows_px,
        gt_flow=run.gt_px,
        iwe_before={m: run.iwe_before for m in run.flows_px},
        iwe_after=run.iwe_after,
        spike_rates=run.spike_rates,
    )
