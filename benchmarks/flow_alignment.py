"""Does a model predict the direction of the ground-truth motion? Alignment of predicted and GT flow.

Runs a model over the GT windows of recordings with ``flow_dt1`` (each GT interval cut into ``--splits``
windows by event count, the state carried, as ``eventflow evaluate --protocol mvsec-dt1 --splits K`` without
its hot-pixel filter) and,
on the evaluated pixels of the last window of every interval (events and GT), compares the predicted
displacement over the interval (:func:`eventflow.metrics.predicted_displacement`) with the GT:

- ``pred_px`` and ``gt_px``: mean magnitudes [px over the interval];
- ``cosine``: mean per-pixel cosine similarity (1: the right direction everywhere, 0: unrelated);
- ``best_scale``: the least-squares factor ``s`` minimising ``|s * pred - gt|`` (1: the right magnitude);
- ``AEE`` and ``AEE_zero``: endpoint errors of the prediction and of zero flow on the same pixels;
- ``pred_uniformity`` and ``gt_uniformity``: the length of the mean displacement vector over the mean length
  (1: one vector everywhere, as a translation; near 0: directions that cancel, as a rotation or a zoom about
  the centre). A model whose ``pred_uniformity`` is near 1 on every recording predicts one global motion
  whatever the input, and its cosine then only says how often that guess happens to match.

AEE alone cannot tell a model that is unsure of the direction (small flows, AEE near zero flow's) from one that
predicts unrelated flows; the cosine can. Prints one JSON line per recording and one for the mean of the
intervals.

usage: python benchmarks/flow_alignment.py --checkpoint PATH [--model NAME] --data FOLDER_OR_FILE [--splits 8]
       [--max-windows 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from eventflow.evaluate import gt_interval_step
from eventflow.inference import ModelRunner, iter_batches, model_encodings, plan_recording, recordings_in
from eventflow.metrics import evaluation_mask, predicted_displacement
from eventflow.models import load_model
from eventflow.windows import WindowSpec

FIELDS = ("pred_px", "gt_px", "cosine", "AEE", "AEE_zero", "pred_uniformity", "gt_uniformity")


def alignment(model: torch.nn.Module, path: Path, splits: int, max_windows: int) -> list[dict[str, float]]:
    """One dict of :data:`FIELDS` plus the ``dot``/``pp`` sums of ``best_scale`` per evaluated GT interval."""
    plan = plan_recording(path, WindowSpec("gt", 1.0 / splits, dt=1), max_windows=max_windows * splits)
    runner = ModelRunner(model, "cpu")
    voxel = model.config.encoding == "voxel"
    rows, count = [], 0
    for batch in iter_batches([plan], 1, encodings=model_encodings(model),
                              num_bins=model.config.num_bins if voxel else None, round_ts=model.config.round_encoding):
        flow = runner.step(batch)[0]
        now, count = gt_interval_step(count, float(batch["dt_gt"][0]), splits)  # the last window of an interval
        if not now:
            continue
        mask = evaluation_mask(batch["event_mask"], batch["gt_flow"])[0]
        if not bool(mask.any()):
            continue
        pred = predicted_displacement(flow, batch["dt_gt"], batch["dt_input"])[0][:, mask]  # (2, P) px
        gt = batch["gt_flow"][0].to(torch.float64)[:, mask]
        rows.append({
            "pred_px": float(torch.linalg.vector_norm(pred, dim=0).mean()),
            "gt_px": float(torch.linalg.vector_norm(gt, dim=0).mean()),
            "cosine": float(torch.nn.functional.cosine_similarity(pred, gt, dim=0, eps=1e-12).mean()),
            "AEE": float(torch.linalg.vector_norm(pred - gt, dim=0).mean()),
            "AEE_zero": float(torch.linalg.vector_norm(gt, dim=0).mean()),
            "pred_uniformity": _uniformity(pred), "gt_uniformity": _uniformity(gt),
            "dot": float((pred * gt).sum()), "pp": float((pred * pred).sum()),
        })
    return rows


def _uniformity(vectors: torch.Tensor) -> float:
    """``|mean vector| / mean |vector|`` of ``(2, P)`` displacements (0 for all-zero vectors)."""
    mean_length = float(torch.linalg.vector_norm(vectors, dim=0).mean())
    return float(torch.linalg.vector_norm(vectors.mean(dim=1))) / mean_length if mean_length > 0 else 0.0


def summary(name: str, rows: list[dict[str, float]]) -> dict[str, object]:
    out: dict[str, object] = {"data": name, "intervals": len(rows)}
    for field in FIELDS:
        out[field] = round(sum(r[field] for r in rows) / max(len(rows), 1), 4)
    pp = sum(r["pp"] for r in rows)
    out["best_scale"] = round(sum(r["dot"] for r in rows) / pp, 4) if pp > 0 else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--model", default=None, help="model name (plain state_dicts such as the authors' weights)")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--splits", type=int, default=8, help="windows per GT interval")
    parser.add_argument("--max-windows", type=int, default=10, help="GT intervals per recording")
    args = parser.parse_args()
    model = load_model(args.model, args.checkpoint).eval()
    every: list[dict[str, float]] = []
    for path in recordings_in(args.data) if args.data.is_dir() else [args.data]:
        rows = alignment(model, path, args.splits, args.max_windows)
        every += rows
        print(json.dumps(summary(path.name, rows)), flush=True)
    print(json.dumps(summary("mean", every)))


if __name__ == "__main__":
    main()
