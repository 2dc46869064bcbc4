"""Pictures of events, optical flow, errors, warped-event images and spike rates.

Every function here is pure: it takes plain NumPy arrays (or torch tensors, moved to the CPU) and returns an
array or a :class:`matplotlib.figure.Figure`. Figures are built on the Agg canvas directly, never through
``pyplot``, so nothing is shown, no global figure list grows, and the code runs headless. To look at a figure
in a notebook, ``display(IPython.display.Image(figure_to_png(fig)))`` works whatever the matplotlib backend;
:func:`save_figure` writes one atomically under ``figures/``.

Conventions (those of the package, restated because every picture depends on them):

- flow ``(2, H, W)`` in pixels, channel 0 = x (columns, rightwards), channel 1 = y (rows, downwards);
- images are drawn with row 0 at the top, so +y points *down* on screen, as in the sensor;
- event count images ``(2, H, W)``: channel 0 counts positive events, channel 1 negative events
  (the ``event_cnt`` encoding of Hagenaars et al., NeurIPS 2021, Sec. 3);
- events: structured arrays of :data:`eventflow.events.EVENT_DTYPE`.

Flow colour code (:func:`flow_to_rgb`), HSV with

    hue = (atan2(f_y, f_x) / 2 pi) mod 1,   saturation = 1,   value = min(|f| / m, 1),

where ``m`` is the magnitude that reaches full brightness (``max_magnitude``; default: the 99th percentile
of the finite magnitudes in the map, so a few outliers do not darken everything). Zero flow is black.
+x is red (hue 0), +y (down) yellow-green (hue 1/4), -x cyan (hue 1/2), -y (up) violet (hue 3/4);
:func:`colour_wheel` draws this legend. Non-finite flow (e.g. pixels without ground truth) is mid grey.

>>> import numpy as np
>>> flow = np.zeros((2, 4, 4)); flow[0] = 2.0          # 2 px to the right everywhere
>>> flow_to_rgb(flow, max_magnitude=2.0)[0, 0].round(3).tolist()
[1.0, 0.0, 0.0]
>>> flow_to_rgb(np.zeros((2, 4, 4)))[0, 0].tolist()    # zero flow is black
[0.0, 0.0, 0.0]
>>> counts = np.zeros((2, 3, 3)); counts[0, 1, 1] = 4  # one pixel of positive events
>>> event_rgb(counts)[1, 1].tolist(), event_rgb(counts)[0, 0].tolist()
([1.0, 0.0, 0.0], [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure

from eventflow import encodings, paths
from eventflow.atomic import atomic_path

#: Percentile of the data that maps to full scale when no explicit scale is given (flow magnitude, counts).
ROBUST_PERCENTILE = 99.0
#: Colour of pixels whose flow is not finite (no ground truth there).
MISSING_GREY = 0.5


def as_numpy(a) -> np.ndarray:
    """A NumPy view/copy of ``a``: torch tensors are detached and moved to the CPU; other inputs go through
    :func:`numpy.asarray`."""
    if hasattr(a, "detach"):  # a torch.Tensor; checked by duck type so that torch is not imported here
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_shape(a: np.ndarray, ndim: int, what: str, layout: str, channels: int | None = None) -> None:
    if a.ndim != ndim or (channels is not None and a.shape[0] != channels):
        hint = " (a batch? pass one item, e.g. x[0])" if a.ndim == ndim + 1 else ""
        raise ValueError(f"{what}: expected shape {layout}, got {tuple(a.shape)}{hint}")


def robust_max(values: np.ndarray, percentile: float = ROBUST_PERCENTILE, floor: float = 1e-9) -> float:
    """The ``percentile``-th percentile of the finite, non-zero entries of ``values`` (any shape), or ``floor``
    where there are none. Used as the full-scale value of colour maps so a few outliers do not wash out a
    picture.

    >>> robust_max(np.array([0.0, 1.0, 2.0, 3.0]), percentile=100)
    3.0
    >>> robust_max(np.zeros(5))
    1e-09
    """
    v = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return floor
    return max(float(np.percentile(v, percentile)), floor)


# ----------------------------------------------------------------------------------------------------- colour maps


def flow_to_rgb(flow, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a flow map: ``(2, H, W)`` pixels -> ``(H, W, 3)`` RGB floats in [0, 1].

    HSV with hue = direction ``atan2(f_y, f_x)``, saturation 1 and value ``min(|f| / max_magnitude, 1)``
    (see the module docstring for the colours of the four directions). ``max_magnitude`` [px] defaults to
    the 99th percentile of the map's finite magnitudes; pass one value to compare several maps (prediction
    and ground truth) on one scale. Non-finite vectors are drawn mid grey.
    """
    f = as_numpy(flow).astype(np.float64, copy=False)
    _check_shape(f, 3, "flow", "(2, H, W)", channels=2)
    finite = np.isfinite(f).all(axis=0)  # (H, W)
    fx = np.where(finite, f[0], 0.0)
    fy = np.where(finite, f[1], 0.0)
    mag = np.hypot(fx, fy)  # (H, W)
    scale = robust_max(mag) if max_magnitude is None else float(max_magnitude)
    if not scale > 0:
        raise ValueError(f"flow_to_rgb: max_magnitude must be > 0, got {max_magnitude}")
    hsv = np.empty(f.shape[1:] + (3,))  # (H, W, 3)
    hsv[..., 0] = np.mod(np.arctan2(fy, fx) / (2 * np.pi), 1.0)
    hsv[..., 1] = 1.0
    hsv[..., 2] = np.clip(mag / scale, 0.0, 1.0)
    rgb = hsv_to_rgb(hsv)
    rgb[~finite] = MISSING_GREY
    return rgb


def colour_wheel(size: int = 101) -> np.ndarray:
    """The legend of :func:`flow_to_rgb`: an ``(size, size, 4)`` RGBA image of the flow colours, with the
    vector from the centre to each pixel as the flow (drawn row 0 at the top, so +y is down, as in the
    images). The rim has full brightness (|f| = max_magnitude); outside the disc is transparent.

    >>> wheel = colour_wheel(21)
    >>> wheel.shape, wheel[10, 20, :3].round(2).tolist(), float(wheel[0, 0, 3])
    ((21, 21, 4), [1.0, 0.0, 0.0], 0.0)
    """
    if size < 3:
        raise ValueError(f"colour_wheel: size must be >= 3, got {size}")
    r = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)  # (size, size) each
    flow = np.stack([xx - r, yy - r])  # (2, size, size)
    rgba = np.ones((size, size, 4))
    rgba[..., :3] = flow_to_rgb(flow, max_magnitude=r)
    rgba[..., 3] = (np.hypot(flow[0], flow[1]) <= r + 0.5).astype(np.float64)
    return rgba


def event_rgb(
    events_or_counts, resolution: tuple[int, int] | None = None, max_count: float | None = None
) -> np.ndarray:
    """An event frame: ``(H, W, 3)`` RGB floats in [0, 1] on a white background, positive events red,
    negative events blue (pixels with both darken towards black).

    With ``a_pos = min(n_pos / max_count, 1)`` and ``a_neg`` alike, ``RGB = (1 - a_neg, 1 - a_pos - a_neg,
    1 - a_pos)`` clipped to [0, 1]. Input: a count image ``(2, H, W)`` (channel 0 positive) or an
    :data:`~eventflow.events.EVENT_DTYPE` array with ``resolution = (H, W)``. ``max_count`` defaults to
    the 99th percentile of the non-zero counts.
    """
    counts = event_counts(events_or_counts, resolution)
    scale = robust_max(counts) if max_count is None else float(max_count)
    a = np.clip(counts / scale, 0.0, 1.0)  # (2, H, W)
    rgb = np.stack([1 - a[1], 1 - a[0] - a[1], 1 - a[0]], axis=-1)  # (H, W, 3)
    return np.clip(rgb, 0.0, 1.0)


def event_counts(events_or_counts, resolution: tuple[int, int] | None = None) -> np.ndarray:
    """Per-pixel event counts ``(2, H, W)`` float64 (channel 0 positive, 1 negative).

    A count image ``(2, H, W)`` is returned as float64; an ``EVENT_DTYPE`` array is counted, which needs
    ``resolution = (H, W)`` and counted by :func:`eventflow.encodings.event_count`, the network's encoding.

    >>> from eventflow.events import make_events
    >>> event_counts(make_events([0, 0, 1], [0, 0, 1], [0.0, 0.1, 0.2], [1, 1, -1]), (2, 2)).tolist()
    [[[2.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]
    """
    a = events_or_counts
    if isinstance(a, np.ndarray) and a.dtype.names is not None:
        if resolution is None:
            raise ValueError("event_counts: events given without resolution=(H, W)")
        h, w = int(resolution[0]), int(resolution[1])
        x, y = a["x"].astype(np.int64), a["y"].astype(np.int64)
        if a.size and (x.min() < 0 or x.max() >= w or y.min() < 0 or y.max() >= h):
            raise ValueError(f"event_counts: event coordinates fall outside the resolution (H, W) = ({h}, {w})")
        return encodings.event_count(x, y, a["p"].astype(np.int64), (h, w)).numpy().astype(np.float64)
    counts = as_numpy(a).astype(np.float64, copy=False)
    _check_shape(counts, 3, "event counts", "(2, H, W)", channels=2)
    return counts


def endpoint_error_map(pred, gt) -> np.ndarray:
    """Per-pixel endpoint error ``||f_pred - f_gt||_2`` [px] of flow maps ``(2, H, W)`` -> ``(H, W)``, or of
    stacks ``(T, 2, H, W)`` -> ``(T, H, W)``; NaN where the ground truth is not finite. (The averaged metrics
    live in the metrics module; this is the picture of their integrand.)

    >>> endpoint_error_map(np.ones((2, 1, 1)) * 3, np.zeros((2, 1, 1))).round(4).tolist()
    [[4.2426]]
    """
    p, g = as_numpy(pred).astype(np.float64), as_numpy(gt).astype(np.float64)
    if p.ndim not in (3, 4) or p.shape[-3] != 2:
        raise ValueError(f"predicted flow: expected shape (2, H, W) or (T, 2, H, W), got {tuple(p.shape)}")
    if g.shape != p.shape:
        raise ValueError(f"endpoint_error_map: ground truth shape {tuple(g.shape)} != prediction {tuple(p.shape)}")
    return np.sqrt(((p - g) ** 2).sum(axis=-3))  # (H, W) or (T, H, W)


def iwe_2d(iwe) -> np.ndarray:
    """An image of warped events as one ``(H, W)`` float64 map: ``(H, W)`` is returned as is, a per-polarity
    ``(2, H, W)`` image is summed over polarity."""
    a = as_numpy(iwe).astype(np.float64, copy=False)
    if a.ndim == 3 and a.shape[0] == 2:
        return a.sum(axis=0)
    _check_shape(a, 2, "image of warped events", "(H, W) or (2, H, W)")
    return a


def voxel_tiles(voxel, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """The ``B`` bins of a voxel grid ``(B, H, W)`` tiled row by row, ``columns`` per row (default
    ``ceil(sqrt(B))``, near square), into one ``(rows*H + (rows-1)*gap, columns*W + (columns-1)*gap)`` map with
    NaN in the gaps and unused tiles (drawn as background), for one image.

    >>> voxel_tiles(np.ones((5, 2, 2)), gap=1).shape
    (5, 8)
    >>> voxel_tiles(np.ones((3, 2, 2)), columns=3, gap=1).shape
    (2, 8)
    """
    v = as_numpy(voxel).astype(np.float64, copy=False)
    _check_shape(v, 3, "voxel grid", "(B, H, W)")
    b, h, w = v.shape
    cols = max(1, min(b, columns or int(np.ceil(np.sqrt(b)))))
    rows = max(1, -(-b // cols))
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap), np.nan)
    for i in range(b):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = v[i]
    return out


def scalar_to_rgb(
    values, cmap: str = "magma", vmin: float = 0.0, vmax: float | None = None, bad: float = 0.85
) -> np.ndarray:
    """Colour a scalar map ``(H, W)`` with the matplotlib colour map ``cmap`` over ``[vmin, vmax]`` (default
    ``vmax``: 99th percentile of ``|values|``): ``(H, W, 3)`` floats in [0, 1]; NaN pixels grey level ``bad``.

    >>> scalar_to_rgb(np.array([[0.0, np.nan]]), "gray", vmax=1.0).tolist()
    [[[0.0, 0.0, 0.0], [0.85, 0.85, 0.85]]]
    """
    v = as_numpy(values).astype(np.float64, copy=False)
    _check_shape(v, 2, "scalar map", "(H, W)")
    top = robust_max(v) if vmax is None else float(vmax)
    if not top > vmin:
        raise ValueError(f"scalar_to_rgb: need vmax > vmin, got [{vmin}, {top}]")
    rgb = colormaps[cmap](np.clip((v - vmin) / (top - vmin), 0.0, 1.0))[..., :3]  # (H, W, 3)
    rgb[~np.isfinite(v)] = bad
    return rgb


def overlay_colour_wheel(rgb: np.ndarray, size: int | None = None, margin: int = 2) -> np.ndarray:
    """A copy of the image ``rgb`` ``(H, W, 3)`` with :func:`colour_wheel` pasted into its upper right corner
    (``size`` default: a quarter of the shorter side), the legend of a :func:`flow_to_rgb` image drawn on the
    same ``max_magnitude``."""
    out = np.array(rgb, dtype=np.float64, copy=True)
    h, w = out.shape[:2]
    size = size or max(min(h, w) // 4, 3)
    if size + margin > min(h, w):
        return out  # the image is too small to hold a legend
    wheel = colour_wheel(size)
    alpha = wheel[..., 3:]
    box = out[margin : margin + size, w - margin - size : w - margin]  # a view: edited in place
    box[:] = alpha * wheel[..., :3] + (1 - alpha) * box
    return out


def rgb_to_png(rgb: np.ndarray, upscale: int = 1) -> bytes:
    """PNG bytes of an RGB image ``(H, W, 3)`` with values in [0, 1] (or uint8 in [0, 255]), each pixel
    repeated ``upscale`` times along both axes (nearest neighbour, so small sensors stay crisp when shown
    larger). Uses zlib's fastest level: these PNGs are redrawn on every slider move.

    >>> rgb_to_png(np.zeros((2, 2, 3)))[:4]
    b'\\x89PNG'
    """
    from PIL import Image

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"rgb_to_png: expected shape (H, W, 3), got {tuple(a.shape)}")
    a8 = a if a.dtype == np.uint8 else np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)
    if upscale > 1:
        a8 = a8.repeat(upscale, axis=0).repeat(upscale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(a8).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def arrow_grid(shape: tuple[int, int], step: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Pixel centres at which arrows sample a flow map of ``shape = (H, W)``: ``(rows, cols, step)`` with a
    default ``step`` giving about 20 arrows along the shorter side."""
    h, w = shape
    if step is None:
        step = max(1, min(h, w) // 20)
    rows = np.arange(step // 2, h, step)
    cols = np.arange(step // 2, w, step)
    return rows, cols, step


def sample_arrows(flow, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The flow ``(2, H, W)`` [px] at the grid ``rows x cols``: ``(2, len(rows), len(cols))``, non-finite
    vectors set to zero (no arrow)."""
    f = as_numpy(flow).astype(np.float64, copy=False)
    _check_shape(f, 3, "flow", "(2, H, W)", channels=2)
    sub = f[:, rows][:, :, cols]  # (2, len(rows), len(cols))
    return np.where(np.isfinite(sub), sub, 0.0)


# ------------------------------------------------------------------------------------------------- axes painters


def new_figure(nrows: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (3.2, 3.0), **kw) -> Figure:
    """A figure on the Agg canvas (no pyplot) with an ``nrows x ncols`` grid of panels of ``panel_size``
    inches; its axes are ``fig.axes``. Extra keywords go to :meth:`Figure.subplots`."""
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig


def _axes(ax: Axes | None, panel_size=(3.2, 3.0)) -> Axes:
    return new_figure(panel_size=panel_size).axes[0] if ax is None else ax


def _image_axes(ax: Axes, title: str | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def draw_colour_wheel(ax: Axes, max_magnitude: float | None = None, size: int = 101) -> None:
    """Draw :func:`colour_wheel` on ``ax``, labelled with the magnitude of its rim [px] when given."""
    ax.imshow(colour_wheel(size), interpolation="bilinear")
    ax.set_axis_off()
    if max_magnitude is not None:
        ax.set_title(f"|f| = {max_magnitude:.3g} px", fontsize=7, pad=2)


def add_colour_wheel(ax: Axes, max_magnitude: float | None = None, width: float = 0.26) -> Axes:
    """An inset colour wheel in the upper right corner of ``ax`` (``width`` as a fraction of the axes)."""
    inset = ax.inset_axes((1 - width - 0.02, 1 - width - 0.02, width, width))
    draw_colour_wheel(inset, None, size=51)
    if max_magnitude is not None:
        inset.text(
            0.5,
            -0.08,
            f"{max_magnitude:.3g} px",
            transform=inset.transAxes,
            ha="center",
            va="top",
            fontsize=6,
            color="white",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0},
        )
    return inset


def draw_flow_arrows(ax: Axes, flow, step: int | None = None, gain: float | None = None, color: str = "black"):
    """Draw ``flow`` ``(2, H, W)`` [px] as arrows on ``ax`` (whose image has row 0 at the top), sampled every
    ``step`` pixels (:func:`arrow_grid`). Arrow length = ``gain`` x displacement; ``gain`` defaults to making
    the 99th-percentile magnitude as long as ``step``. Returns the ``Quiver`` artist; its ``gain`` attribute
    holds the gain used, and ``quiver.set_UVC(*sample_arrows(new_flow, rows, cols))`` redraws it."""
    f = as_numpy(flow)
    _check_shape(f, 3, "flow", "(2, H, W)", channels=2)
    rows, cols, step = arrow_grid(f.shape[1:], step)
    sub = sample_arrows(f, rows, cols)  # (2, len(rows), len(cols))
    if gain is None:
        gain = step / robust_max(np.hypot(sub[0], sub[1]), floor=1e-3)
    quiver = ax.quiver(
        cols,
        rows,
        sub[0],
        sub[1],
        angles="xy",
        scale_units="xy",
        scale=1.0 / gain,
        color=color,
        width=0.006,
        headwidth=3.5,
        headlength=4,
        pivot="tail",
    )
    quiver.gain = gain
    return quiver


def plot_events(
    events_or_counts,
    resolution: tuple[int, int] | None = None,
    ax: Axes | None = None,
    max_count: float | None = None,
    title: str | None = "events",
) -> Figure:
    """Event frame (:func:`event_rgb`) of a count image ``(2, H, W)`` or an event array (with
    ``resolution = (H, W)``). Returns the figure (a new one where ``ax`` is None)."""
    ax = _axes(ax)
    ax.imshow(event_rgb(events_or_counts, resolution, max_count), interpolation="nearest")
    _image_axes(ax, title)
    return ax.figure


def plot_flow(
    flow, ax: Axes | None = None, max_magnitude: float | None = None, wheel: bool = True, title: str | None = "flow"
) -> Figure:
    """Colour-coded flow (:func:`flow_to_rgb`) of ``flow`` ``(2, H, W)`` [px] with an inset colour wheel."""
    ax = _axes(ax)
    f = as_numpy(flow)
    _check_shape(f, 3, "flow", "(2, H, W)", channels=2)
    scale = robust_max(np.hypot(f[0], f[1])) if max_magnitude is None else max_magnitude
    ax.imshow(flow_to_rgb(f, scale), interpolation="nearest")
    _image_axes(ax, title)
    if wheel:
        add_colour_wheel(ax, scale)
    return ax.figure


def plot_flow_arrows(
    flow,
    background=None,
    resolution: tuple[int, int] | None = None,
    ax: Axes | None = None,
    step: int | None = None,
    gain: float | None = None,
    title: str | None = "flow",
) -> Figure:
    """Flow ``(2, H, W)`` [px] as arrows over ``background``: an event count image ``(2, H, W)``, an event
    array (with ``resolution``), an RGB image ``(H, W, 3)``, or None (white)."""
    ax = _axes(ax)
    f = as_numpy(flow)
    _check_shape(f, 3, "flow", "(2, H, W)", channels=2)
    if background is None:
        img = np.ones(f.shape[1:] + (3,))
    elif isinstance(background, np.ndarray) and background.ndim == 3 and background.shape[-1] == 3:
        img = background
    else:
        img = event_rgb(background, resolution)
    ax.imshow(img, interpolation="nearest")
    q = draw_flow_arrows(ax, f, step=step, gain=gain)
    _image_axes(ax, f"{title} (arrows x{q.gain:.2g})" if title else None)
    return ax.figure


def plot_error_map(
    pred, gt, ax: Axes | None = None, mask=None, vmax: float | None = None, title: str | None = "endpoint error"
) -> Figure:
    """Endpoint error ``||f_pred - f_gt||`` [px] of two ``(2, H, W)`` flow maps, with a colour bar and the mean
    over the shown pixels in the title. ``mask`` ``(H, W)`` bool keeps only those pixels (e.g. pixels with
    events, as in the masked AEE); the rest, and pixels without ground truth, are grey."""
    ax = _axes(ax, panel_size=(3.6, 3.0))
    err = endpoint_error_map(pred, gt)
    if mask is not None:
        m = as_numpy(mask).astype(bool)
        if m.shape != err.shape:
            raise ValueError(f"plot_error_map: mask shape {tuple(m.shape)} != flow (H, W) {err.shape}")
        err = np.where(m, err, np.nan)
    im = ax.imshow(err, cmap=masked_cmap("magma"), vmin=0.0, vmax=vmax or robust_max(err), interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="px")
    shown = err[np.isfinite(err)]
    mean = f"mean {shown.mean():.3g} px" if shown.size else "no pixels"
    _image_axes(ax, f"{title}: {mean}" if title else None)
    return ax.figure


def plot_iwe(images: Mapping[str, object], vmax: float | None = None, panel_size=(3.2, 3.0)) -> Figure:
    """Images of warped events side by side on one grey scale (darker = more events), e.g.
    ``{"before warping": iwe0, "after warping": iwe1}``; each ``(H, W)`` or ``(2, H, W)`` (summed over
    polarity). A sharper image after warping means the flow explains the events (contrast maximisation,
    Hagenaars et al. 2021, Sec. 3.2). ``vmax`` defaults to the 99th percentile over all images."""
    maps = {k: iwe_2d(v) for k, v in images.items()}
    if not maps:
        return _empty_figure("no images of warped events")
    scale = vmax or robust_max(np.concatenate([m.ravel() for m in maps.values()]))
    fig = new_figure(1, len(maps), panel_size=panel_size)
    for ax, (name, m) in zip(fig.axes, maps.items()):
        ax.imshow(m, cmap="gray_r", vmin=0.0, vmax=scale, interpolation="nearest")
        _image_axes(ax, name)
    return fig


def plot_voxel_grid(voxel, vmax: float | None = None, title: str | None = "voxel grid") -> Figure:
    """The ``B`` temporal bins of a voxel grid ``(B, H, W)`` (signed: polarity-weighted counts) in one row on a
    diverging colour scale symmetric about 0 (red positive, blue negative)."""
    v = as_numpy(voxel).astype(np.float64, copy=False)
    _check_shape(v, 3, "voxel grid", "(B, H, W)")
    scale = vmax or robust_max(v)
    nb = max(v.shape[0], 1)
    fig = new_figure(1, nb, panel_size=(2.2, 2.2))
    for i, ax in enumerate(fig.axes):
        if i < v.shape[0]:
            ax.imshow(v[i], cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        _image_axes(ax, f"bin {i}")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_spike_rates(
    rates: Mapping[str, Mapping[str, object]], ax: Axes | None = None, ylabel: str = "spikes per neuron per pass"
) -> Figure:
    """Grouped bar chart of spike rates per layer: ``rates = {series: {layer: rate}}`` (series = a model or a
    window), each rate a scalar or a per-channel array ``(C,)`` (bar = mean over channels, whisker = plus and
    minus its standard deviation). Layers appear in first-seen order."""
    ax = _axes(ax, panel_size=(4.5, 3.0))
    draw_spike_rates(ax, rates, ylabel)
    return ax.figure


def draw_spike_rates(
    ax: Axes, rates: Mapping[str, Mapping[str, object]], ylabel: str = "spike rate", ymax: float | None = None
) -> list[tuple]:
    """The drawing of :func:`plot_spike_rates` on an existing axes (cleared first). Returns, per series, the
    artists ``(bars, whiskers)`` that :func:`update_spike_rates` refreshes."""
    ax.clear()
    layers = _layers(rates)
    if not layers:
        ax.text(0.5, 0.5, "no spike rates", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return []
    width = 0.8 / len(rates)
    x = np.arange(len(layers))
    artists = []
    for i, (series, per_layer) in enumerate(rates.items()):
        mean, std = _layer_stats(per_layer, layers)
        pos = x + (i - (len(rates) - 1) / 2) * width
        bars = ax.bar(pos, mean, width, label=series)
        whiskers = ax.vlines(pos, mean - std, mean + std, color="black", linewidth=1)
        artists.append((bars, whiskers))
    ax.set_xticks(x, layers, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    if ymax:
        ax.set_ylim(0, ymax)
    if len(rates) > 1:
        ax.legend(fontsize=7)
    return artists


def update_spike_rates(artists: list[tuple], rates: Mapping[str, Mapping[str, object]]) -> None:
    """Put new values into the bars drawn by :func:`draw_spike_rates` (same series and layers, e.g. the next
    window): much cheaper than drawing the chart again."""
    layers = _layers(rates)
    for (bars, whiskers), per_layer in zip(artists, rates.values(), strict=True):
        mean, std = _layer_stats(per_layer, layers)
        for rect, m in zip(bars, mean, strict=True):
            rect.set_height(m)
        x = [rect.get_x() + rect.get_width() / 2 for rect in bars]
        whiskers.set_segments([[(xi, m - s), (xi, m + s)] for xi, m, s in zip(x, mean, std)])


def _layers(rates: Mapping[str, Mapping[str, object]]) -> list[str]:
    layers: list[str] = []
    for per_layer in rates.values():
        layers += [name for name in per_layer if name not in layers]
    return layers


def _layer_stats(per_layer: Mapping[str, object], layers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over channels per layer (NaN mean, no whisker, for an absent layer)."""
    stats = np.array([_mean_std(per_layer.get(name)) for name in layers], dtype=np.float64).reshape(-1, 2)
    return stats[:, 0], stats[:, 1]


def _mean_std(rate) -> tuple[float, float]:
    if rate is None:
        return float("nan"), 0.0
    r = as_numpy(rate).astype(np.float64).ravel()
    return (float(r.mean()), float(r.std())) if r.size else (float("nan"), 0.0)


def plot_metric_vs_window(
    results: Mapping[str, Mapping[float, float]],
    metric: str = "AEE [px]",
    xlabel: str = "window size",
    ax: Axes | None = None,
    logx: bool = False,
) -> Figure:
    """One line per series (model): ``results = {model: {window_size: metric_value}}``, e.g. the AEE at
    ``dt = 1`` and ``dt = 4`` ground-truth frames, or over event-count windows. Points sorted by window size."""
    ax = _axes(ax, panel_size=(4.5, 3.0))
    if not results:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
    for name, curve in results.items():
        xs = sorted(curve)
        ax.plot(xs, [curve[x] for x in xs], marker="o", label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if results:
        ax.legend(fontsize=8)
    return ax.figure


def masked_cmap(name: str, bad: str = "0.6"):
    """A copy of the matplotlib colour map ``name`` that draws NaN pixels in colour ``bad`` (e.g. grey "0.6")."""
    return colormaps[name].with_extremes(bad=bad)


def _empty_figure(message: str) -> Figure:
    fig = new_figure()
    ax = fig.axes[0]
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


# ---------------------------------------------------------------------------------------------------- output


def figure_to_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes (for ``IPython.display.Image`` or an ``ipywidgets.Image``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: float = 150) -> Path:
    """Write ``fig`` atomically; a relative ``path`` is taken under ``figures/`` of the project (see
    :func:`eventflow.paths.figures_dir`). The format follows the suffix (``.png``, ``.pdf``, ``.svg``).
    Returns the path written."""
    target = Path(path)
    if not target.suffix:
        raise ValueError(f"save_figure: {target} has no suffix to choose the format (.png, .pdf, .svg)")
    if not target.is_absolute():
        target = paths.figures_dir() / target
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix[1:], dpi=dpi)
    return target
