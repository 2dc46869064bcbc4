"""Post-training calibration: the ranges of every layer's inputs, currents and states, on training data only.

:func:`calibrate` runs the float model over windows of a :class:`~eventflow.datasets.SequenceDataset` (state
carried from window to window, reset where a recording starts, as in training) with forward hooks that observe,
per layer (names ``"<layer>.<tensor>"``):

- every layer: ``input`` (the layer's input; whether it only holds whole numbers, e.g. event counts or spikes);
- ``ConvLayer``: ``current`` (the convolution's output, before the activation);
- LIF layers: ``current`` (``W_ff * x + W_rec * z``) and ``v`` (membrane potential after the update; with a
  hard reset only where the neuron did not fire, the potentials that are used again);
- ConvGRU: ``update``, ``reset``, ``out`` (gate pre-activations) and ``hidden`` (the state).

Each observer keeps the largest magnitude and a random sample of the non-zero magnitudes, from which
:meth:`TensorStats.range` gives the max or a percentile (zeros are left out: most currents of a spiking layer are
exactly zero where no spike arrived, and counting them would shrink the range). The hooks are removed when the
call returns. The result records every file the dataset read (:attr:`Calibration.files`):
:func:`calibrate_on_training_split` reads the training split of the simulated dataset and nothing else.

>>> import torch
>>> obs = Observer(seed=0)
>>> obs.update(torch.tensor([0.0, 1.0, 2.0, 3.0, 40.0]))
>>> stats = obs.summary()
>>> stats.absmax, stats.integer, stats.range("max"), stats.range("percentile", 50.0)
(40.0, True, 40.0, 2.5)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from eventflow.datasets import SequenceDataset
from eventflow.models.base import FlowModel
from eventflow.neurons.analog import ConvGRU, ConvLayer
from eventflow.neurons.modules import ConvLIF
from eventflow.quantize.layers import check_quantizable
from eventflow.windows import WindowSpec

#: Batch key of each model input encoding (:class:`~eventflow.models.ModelConfig` ``encoding``).
INPUT_KEYS = {"cnt": "event_cnt", "voxel": "event_voxel"}

Method = Literal["max", "percentile"]

#: Non-zero magnitudes sampled per observed call (bounded memory whatever the resolution).
SAMPLES_PER_CALL = 4096


class TensorStats(NamedTuple):
    """What calibration saw of one tensor: ``absmax``, the sampled non-zero magnitudes ``samples`` (1-D float32),
    whether every value was a whole number (``integer``), and the number of observed elements ``count``."""

    absmax: float
    samples: Tensor
    integer: bool
    count: int

    def range(self, method: Method = "percentile", percentile: float = 99.99) -> float:
        """The magnitude a format must hold: ``absmax`` (``"max"``) or the ``percentile`` of the non-zero
        magnitudes (``"percentile"``; 0 when none was non-zero)."""
        if method == "max":
            return self.absmax
        if method != "percentile":
            raise ValueError(f"unknown calibration method {method!r}; valid: max, percentile")
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        if self.samples.numel() == 0:
            return 0.0
        return float(torch.quantile(self.samples.double(), percentile / 100.0))


class Observer:
    """Accumulates :class:`TensorStats` of the tensors passed to :meth:`update` (a sample of at most
    :data:`SAMPLES_PER_CALL` non-zero magnitudes per call, drawn with a seeded generator)."""

    def __init__(self, seed: int = 0):
        self.absmax = 0.0
        self.integer = True
        self.count = 0
        self._samples: list[Tensor] = []
        self._gen = torch.Generator().manual_seed(seed)

    def update(self, x: Tensor) -> None:
        x = x.detach().float().flatten().cpu()
        if x.numel() == 0:
            return
        if not torch.isfinite(x).all():
            raise ValueError("calibration saw a NaN or infinite value; check the model and its inputs")
        self.count += x.numel()
        mag = x.abs()
        self.absmax = max(self.absmax, float(mag.max()))
        self.integer = self.integer and bool(torch.equal(x, x.round()))
        nonzero = mag[mag > 0]
        if nonzero.numel() > SAMPLES_PER_CALL:
            nonzero = nonzero[torch.randperm(nonzero.numel(), generator=self._gen)[:SAMPLES_PER_CALL]]
        self._samples.append(nonzero)

    def summary(self) -> TensorStats:
        samples = torch.cat(self._samples) if self._samples else torch.zeros(0)
        return TensorStats(self.absmax, samples, self.integer, self.count)


class Calibration(NamedTuple):
    """Result of :func:`calibrate`: ``stats`` by ``"<layer>.<tensor>"``, the ``files`` the data came from (sorted
    absolute paths), the number of ``windows`` (forward passes) and the window ``spec``."""

    stats: dict[str, TensorStats]
    files: tuple[str, ...]
    windows: int
    spec: WindowSpec

    def get(self, key: str) -> TensorStats:
        """The statistics of ``key`` (``"<layer>.<tensor>"``); ValueError listing the observed tensors otherwise."""
        if key not in self.stats:
            raise ValueError(f"calibration has no statistics for {key!r}; it has {', '.join(sorted(self.stats))}")
        return self.stats[key]


def _hooks(name: str, layer: nn.Module, observers: dict[str, Observer]) -> list:
    """Register the forward hooks that observe ``layer`` (module docstring); return their handles."""
    check_quantizable(name, layer)

    def observer(tensor: str) -> Observer:
        key = f"{name}.{tensor}"
        if key not in observers:
            observers[key] = Observer(seed=len(observers))
        return observers[key]

    def observe_output(tensor: str):
        return lambda module, args, output: observer(tensor).update(output)

    handles = [layer.register_forward_pre_hook(lambda module, args: observer("input").update(args[0]))]
    if isinstance(layer, ConvLayer):
        handles.append(layer.conv.register_forward_hook(observe_output("current")))
    elif isinstance(layer, ConvLIF):
        def lif_hook(module, args, output):
            x, state_in = args[0], args[1]
            observer("current").update(module.current(x, state_in.z))
            v, z = output[1]
            # with a hard reset a spiking neuron's potential is multiplied by 0 at the next step: only the
            # potentials of silent neurons are ever used again
            observer("v").update(v[z == 0] if module.hard_reset else v)
        handles.append(layer.register_forward_hook(lif_hook))
    elif isinstance(layer, ConvGRU):
        for gate, conv in (("update", layer.update_gate), ("reset", layer.reset_gate), ("out", layer.out_gate)):
            handles.append(conv.register_forward_hook(observe_output(gate)))
        handles.append(layer.register_forward_hook(lambda module, args, output: observer("hidden").update(output[0])))
    return handles


@contextlib.contextmanager
def observing(model: FlowModel) -> Iterator[dict[str, Observer]]:
    """Hooks on every layer of ``model`` while the block runs; yields the observers (filled as the model runs)."""
    observers: dict[str, Observer] = {}
    handles = []
    try:
        for name, layer in model.layers().items():
            handles += _hooks(name, layer, observers)
        yield observers
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def calibrate(model: FlowModel, dataset: SequenceDataset, max_windows: int | None = None,
              progress: bool = False) -> Calibration:
    """Observe ``model`` (float, in eval mode for the call) on the windows of ``dataset``.

    Args:
        model: the float model.
        dataset: training windows (a :class:`~eventflow.datasets.SequenceDataset` with the model's input
            encoding); every window of the epoch unless ``max_windows`` (forward passes) is given.
        progress: a tqdm bar.

    Returns:
        :class:`Calibration` with the statistics and the files read.
    """
    key = INPUT_KEYS[model.config.encoding]
    if key.removeprefix("event_") not in dataset.encodings:
        raise ValueError(f"{model.config.name} reads the {model.config.encoding!r} encoding, which the calibration "
                         f"dataset does not produce (it has {', '.join(dataset.encodings)})")
    steps = len(dataset) if max_windows is None else min(len(dataset), max_windows)
    if steps < 1:
        raise ValueError("calibration needs at least one window; the dataset has none")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    files: set[str] = set()
    state = None
    try:
        with observing(model) as observers:
            for step in tqdm(range(steps), desc="calibrating", disable=not progress):
                batch = dataset[step]
                files.update(str(Path(dataset.paths[i]).resolve()) for i in batch["file_index"].tolist() if i >= 0)
                x = batch[key].to(device)
                if state is not None:
                    state = model.reset_state(state, batch["reset"].to(device))
                _, state = model(x, state)
            stats = {name: obs.summary() for name, obs in sorted(observers.items())}
    finally:
        model.train(was_training)
    return Calibration(stats, tuple(sorted(files)), steps, dataset.spec)


#: Default calibration windows: those of the held-out evaluation (events between consecutive ground-truth maps).
DEFAULT_CALIBRATION_SPEC = WindowSpec("gt", 1.0, dt=1)


def training_split(profile: str = "quick") -> tuple[Path, ...]:
    """The training recordings of the simulated dataset of ``profile`` (generated on first use)."""
    from eventflow.simulate import ensure_default_dataset

    return ensure_default_dataset(profile).train


def calibrate_on_training_split(model: FlowModel, profile: str = "quick", max_windows: int | None = 100,
                                spec: WindowSpec = DEFAULT_CALIBRATION_SPEC, lanes: int = 4,
                                progress: bool = False) -> Calibration:
    """:func:`calibrate` on the training split of the simulated dataset only (never the held-out test split):
    ``lanes`` recordings read in parallel (a batch), windows ``spec``, at most ``max_windows`` forward passes."""
    encoding = model.config.encoding
    encodings = ("cnt",) if encoding == "cnt" else ("voxel",)
    dataset = SequenceDataset(training_split(profile), spec, batch_size=lanes, encodings=encodings,
                              num_bins=model.config.num_bins if encoding == "voxel" else None,
                              round_ts=model.config.round_encoding)
    return calibrate(model, dataset, max_windows, progress)
