"""Where the self-supervised loss puts its minimum on simulated data: the ground-truth flow against zero flow and
random per-pixel flows, as a function of the motion per forward pass.

For each recording with ``flow_dt1`` ground truth and each ``--splits K``, the first ``--passes`` windows of
``1/K`` GT interval (cut by event count, as :func:`eventflow.evaluate.with_splits`) form one loss window.
The loss (:func:`eventflow.loss.event_warping_loss`, the default form unless ``--compat``) is evaluated for:

- ``zero``: zero flow;
- ``GT``: the ground truth of each pass, converted to network units (:func:`eventflow.evaluate.gt_as_network_output`);
- ``noise s``: i.i.d. Gaussian per-pixel flow of ``s`` px per pass (``--noise``), seeded;
- ``GT+noise s``: the two added.

A loss that a network can learn the motion from has ``GT`` well below ``zero`` and below every ``noise`` row.
Prints one JSON line per (recording, K) with the events per pass, the mean GT displacement per pass [px] and the
losses.

``--fit N`` also minimises the loss from zero flow with N Adam steps, over two families of flows:

- ``fit_const_px``: one flow ``(x, y)`` [px per pass] for every pixel and pass (next to ``gt_mean_px``, the mean
  GT displacement per pass): does the loss's minimum lie at the true global motion?
- ``fit_field_*``: a free flow per pixel, shared by the passes, with the smoothness term of ``--smoothness``:
  its loss against ``GT``'s (``fit_field_loss``, ``fit_field_GT_loss``, both with that smoothness), and the
  cosine and least-squares scale of its displacement onto the GT's on the evaluated pixels of the last pass.
  A field below the GT's loss with a low cosine is a minimum of the loss that is not the motion.

``--dither`` moves every event by a sub-pixel offset in [0, 1)^2 (a fixed low-discrepancy sequence over the
events of a pass) before the loss sees it. Events carry integer pixel coordinates, so at zero flow every event
sits exactly on a pixel and any sub-pixel flow spreads it over two to four; the loss then has a strict local
minimum at zero flow. Dithered events remove that lattice artefact (compare ``fit_const_px`` with and without).

usage: python benchmarks/loss_landscape.py RECORDING [RECORDING ...] [--splits 1 2 4 8] [--passes 10]
       [--noise 0.25 1 2] [--smoothness 0.0] [--compat hagenaars2021] [--fit 200] [--dither]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from eventflow.evaluate import gt_as_network_output
from eventflow.inference import FLOW_SCALING, iter_batches, plan_recording
from eventflow.loss import empty_loss_buffer, event_warping_loss, loss_buffer_append
from eventflow.metrics import evaluation_mask
from eventflow.windows import WindowSpec

#: The plastic number: (1/g, 1/g^2) steps give the R2 low-discrepancy sequence in the unit square.
_PLASTIC = 1.32471795724474602596


def subpixel_offsets(count: int) -> torch.Tensor:
    """``(count, 2)`` offsets in [0, 1)^2, evenly spread (R2 sequence), deterministic."""
    k = torch.arange(count, dtype=torch.float64).unsqueeze(1)
    steps = torch.tensor([1.0 / _PLASTIC, 1.0 / _PLASTIC**2], dtype=torch.float64)
    return torch.frac(0.5 + k * steps).to(torch.float32)


def landscape(path: Path, splits: int, passes: int, noise: list[float], smoothness: float,
              compat: str | None, seed: int = 0, fit_steps: int = 0, dither: bool = False) -> dict[str, object]:
    """The losses of one loss window of ``passes`` windows of ``1/splits`` GT interval of ``path`` (and, with
    ``fit_steps``, the flows that minimise it; see the module docstring)."""
    plan = plan_recording(path, WindowSpec("gt", 1.0 / splits, dt=1), max_windows=passes)
    batches = list(iter_batches([plan], 1, encodings=("mask", "list")))[:passes]
    if dither:  # columns (ts, y, x, p): y and x move inside their pixel
        for b in batches:
            b["event_list"] = b["event_list"].clone()
            b["event_list"][..., 1:3] += subpixel_offsets(b["event_list"].shape[1])
    gts = [gt_as_network_output(b["gt_flow"], b["dt_gt"], b["dt_input"], FLOW_SCALING) for b in batches]

    def loss_tensor(flows: list[torch.Tensor], weight: float) -> torch.Tensor:
        buffer = empty_loss_buffer()
        for flow, b in zip(flows, batches):
            buffer = loss_buffer_append(buffer, [flow], b["event_list"], b["pol_mask"], b["event_valid"],
                                        b["event_mask"])
        return event_warping_loss(buffer, FLOW_SCALING, weight, compat=compat)

    def loss(flows: list[torch.Tensor]) -> float:
        return round(float(loss_tensor(flows, smoothness)), 4)

    generator = torch.Generator().manual_seed(seed)

    def noisy(sigma_px: float) -> list[torch.Tensor]:
        return [torch.randn(g.shape, generator=generator) * sigma_px / FLOW_SCALING for g in gts]

    shown = [evaluation_mask(b["event_mask"], b["gt_flow"])[0] for b in batches]
    motion = [float(torch.linalg.vector_norm(g[0][:, m], dim=0).mean()) * FLOW_SCALING
              for g, m in zip(gts, shown) if bool(m.any())]
    out: dict[str, object] = {
        "recording": path.name, "splits": splits, "passes": len(batches), "dither": dither,
        "events_per_pass": round(sum(int(b["event_valid"].sum()) for b in batches) / max(len(batches), 1)),
        "gt_px_per_pass": round(sum(motion) / max(len(motion), 1), 3),
        "zero": loss([torch.zeros_like(g) for g in gts]), "GT": loss(gts),
    }
    for sigma in noise:
        out[f"noise {sigma:g}"] = loss(noisy(sigma))
        out[f"GT+noise {sigma:g}"] = loss([g + n for g, n in zip(gts, noisy(sigma))])
    if fit_steps > 0:
        out.update(_fit(gts, shown, lambda flows: loss_tensor(flows, smoothness), fit_steps))
    return out


def _fit(gts: list[torch.Tensor], shown: list[torch.Tensor], loss_of, steps: int) -> dict[str, object]:
    """Minimise ``loss_of(per-pass flows)`` from zero over a constant flow and over a per-pixel field."""
    mean_gt = torch.stack([g[0][:, m].mean(dim=1) for g, m in zip(gts, shown) if bool(m.any())]).mean(0)
    height, width = gts[0].shape[-2:]

    def minimise(parameter: torch.Tensor, as_flow, lr: float) -> None:
        optimizer = torch.optim.Adam([parameter], lr=lr)
        for _ in range(steps):
            value = loss_of([as_flow(parameter)] * len(gts))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()

    constant = torch.zeros(2, requires_grad=True)
    minimise(constant, lambda c: c.view(1, 2, 1, 1).expand(1, 2, height, width), lr=2e-3)  # ~0.26 px per step
    field = torch.zeros(1, 2, height, width, requires_grad=True)
    minimise(field, lambda f: f, lr=1e-3)
    mask = shown[-1]
    fitted, truth = field.detach()[0][:, mask], gts[-1][0][:, mask]  # (2, N) network units
    cosine = torch.nn.functional.cosine_similarity(fitted, truth, dim=0).mean()
    scale = (fitted * truth).sum() / (fitted * fitted).sum().clamp(min=1e-12)
    with torch.no_grad():
        final_field = float(loss_of([field] * len(gts)))
        gt_loss = float(loss_of(gts))
    return {"gt_mean_px": [round(float(v) * FLOW_SCALING, 3) for v in mean_gt],
            "fit_const_px": [round(float(v) * FLOW_SCALING, 3) for v in constant.detach()],
            "fit_field_loss": round(final_field, 4), "fit_field_GT_loss": round(gt_loss, 4),
            "fit_field_cosine": round(float(cosine), 3), "fit_field_scale": round(float(scale), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", nargs="+", type=Path)
    parser.add_argument("--splits", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--passes", type=int, default=10, help="passes per loss window (10 in the paper)")
    parser.add_argument("--noise", nargs="*", type=float, default=[0.25, 1.0, 2.0], help="px per pass")
    parser.add_argument("--smoothness", type=float, default=0.0, help="smoothness weight (0: contrast only)")
    parser.add_argument("--compat", choices=["hagenaars2021"], default=None)
    parser.add_argument("--fit", type=int, default=0, metavar="N",
                        help="also minimise the loss with N Adam steps (constant flow; per-pixel field)")
    parser.add_argument("--dither", action="store_true", help="sub-pixel event positions (see the docstring)")
    args = parser.parse_args()
    for path in args.recordings:
        for k in args.splits:
            print(json.dumps(landscape(path, k, args.passes, args.noise, args.smoothness, args.compat,
                                       fit_steps=args.fit, dither=args.dither)), flush=True)


if __name__ == "__main__":
    main()
