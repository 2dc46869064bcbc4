"""The training metrics log: one record per optimisation step, as JSON lines and CSV (and TensorBoard scalars
where asked and installed).

Fields: ``step`` (optimisation steps done), ``epoch``, ``batch`` (batches of the epoch read), ``loss``, ``rsat``
(:func:`eventflow.metrics.ratio_squared_average_timestamps` of the window, mean over the lanes: the
average-timestamp contrast with the predicted flow over that without; below 1 the flow sharpens the events, a
signal of learning that does not depend on how hard each window is, unlike the loss; rank 0's lanes in a
data-parallel run), ``lr``,
``grad_norm`` (global L2 norm before clipping), ``time_per_step`` [s] (wall time since the previous step, data
loading included), ``elapsed`` [s] and, every ``log_every`` steps for spiking models, ``spike_rate/<layer>``: the
fraction of neurons of the layer that spiked in the last pass of the window (empty in the CSV otherwise).

On resumption the records after the checkpoint's step are dropped, so that the log reads as one run.

>>> import tempfile, pathlib, json
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> log = MetricsLog(out, ["spike_rate/head"])
>>> log.write({"step": 1, "epoch": 0, "batch": 10, "loss": 0.5})
>>> log.close()
>>> json.loads((out / "metrics.jsonl").read_text())["loss"]
0.5
>>> (out / "metrics.csv").read_text().splitlines()[1]
'1,0,10,0.5,,,,,,'
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

JSONL = "metrics.jsonl"
CSV = "metrics.csv"
BASE_FIELDS = ("step", "epoch", "batch", "loss", "rsat", "lr", "grad_norm", "time_per_step", "elapsed")


class MetricsLog:
    """Appends records to ``out_dir/metrics.jsonl`` and ``out_dir/metrics.csv``.

    Args:
        out_dir: the run folder.
        extra_fields: CSV columns after :data:`BASE_FIELDS` (e.g. ``spike_rate/G1``).
        resume_step: continue the files of an interrupted run, keeping the records up to this step; ``None``
            starts new files.
        tensorboard: also write scalars under ``out_dir/tensorboard`` (needs the ``tensorboard`` package).
    """

    def __init__(self, out_dir: str | Path, extra_fields: list[str], resume_step: int | None = None,
                 tensorboard: bool = False):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fields = [*BASE_FIELDS, *extra_fields]
        self.jsonl_path = self.out_dir / JSONL
        self.csv_path = self.out_dir / CSV
        kept: list[dict[str, Any]] = []
        if resume_step is not None and self.jsonl_path.is_file():
            for line in self.jsonl_path.read_text().splitlines():
                record = json.loads(line)
                if record["step"] <= resume_step:
                    kept.append(record)
        self._jsonl = self.jsonl_path.open("w")
        self._csv_file = self.csv_path.open("w", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=self.fields, extrasaction="ignore")
        self._csv.writeheader()
        self._writer = _tensorboard_writer(self.out_dir / "tensorboard") if tensorboard else None
        for record in kept:
            self._append(record)
        self._flush()

    def _append(self, record: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(record) + "\n")
        self._csv.writerow(record)

    def _flush(self) -> None:
        self._jsonl.flush()
        self._csv_file.flush()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (a dict with ``step`` and any of the fields)."""
        self._append(record)
        self._flush()
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()
        if self._writer is not None:
            self._writer.close()


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional: only when run.tensorboard is set
    except ImportError:
        raise ValueError("run.tensorboard is set but the tensorboard package is not installed "
                         "(pip install tensorboard, or set run.tensorboard: false)") from None
    return SummaryWriter(str(folder))
