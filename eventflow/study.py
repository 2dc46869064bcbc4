"""The evaluation study of notebook 03: its settings per profile, the models it compares, and the data sets it
evaluates on when they are present.

- :func:`study_settings`: how much of each data set the ``quick`` (minutes on a 2-core CPU) and ``full``
  profiles evaluate;
- :func:`study_models`: the authors' pretrained LIF-FireNet (shared folder, when present) and our LIF-FireNet
  and FireNet trained by notebook 02 (:func:`eventflow.train.ensure_trained`, which trains them if missing);
- :func:`shared_recordings` and :data:`PAPER_DATASETS`: the real recordings of the shared folder, and the
  paper's evaluation sets where a user put them under ``data/`` (the authors' preprocessed HDF5 files,
  downloaded from the links in the tudelft/event_flow README): ``data/mvsec/*.h5`` (MVSEC ``outdoor_day1``,
  ``indoor_flying1``-``3``), ``data/ecd/*.h5`` and ``data/hqf/*.h5``;
- :func:`evaluate_if_present`: an evaluation that is skipped, with a printed reason, where the data is absent.

>>> study_settings("quick").max_sequences
2
>>> sorted(PAPER_DATASETS)
['ECD', 'HQF', 'MVSEC']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from eventflow.evaluate import EvalResult, evaluate_models
from eventflow.inference import prepare_model
from eventflow.models import FlowModel
from eventflow.paper import published_table, with_published
from eventflow.paths import data_dir, shared_dir, shared_file

AUTHORS_LIF = "LIF-FireNet (authors)"
OURS_LIF = "LIF-FireNet (ours)"
OURS_ANN = "FireNet (ours)"


@dataclass(frozen=True)
class StudySettings:
    """Amounts per profile: ``max_sequences`` and ``max_windows`` (evaluation windows per sequence; None: all)
    of every evaluation, windows of the explorer and figures (``explorer_windows``), the events per window of
    the window-size sweep (``window_sizes``, at most ``sweep_windows`` windows each) and the forward passes of
    the energy measurement (``energy_passes``)."""

    max_sequences: int | None
    max_windows: int | None
    explorer_windows: int
    window_sizes: tuple[int, ...]
    sweep_windows: int | None
    energy_passes: int


PROFILES = {
    "quick": StudySettings(max_sequences=2, max_windows=3, explorer_windows=6, window_sizes=(1000, 5000, 15000),
                           sweep_windows=2, energy_passes=5),
    "full": StudySettings(max_sequences=None, max_windows=None, explorer_windows=64,
                          window_sizes=(1000, 2000, 5000, 10000, 15000, 30000), sweep_windows=None,
                          energy_passes=200),
}


def study_settings(profile: str) -> StudySettings:
    """The settings of ``profile`` (``quick`` or ``full``)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[profile]


def study_models(profile: str, device: str = "cpu", progress: bool = True) -> dict[str, FlowModel]:
    """The models of the comparison, by label: :data:`AUTHORS_LIF` (the authors' weights, when the shared
    folder has them), :data:`OURS_LIF` and :data:`OURS_ANN` (trained with ``profile`` by notebook 02; trained
    here if missing)."""
    from eventflow.train import ensure_trained  # training pulls in the whole loop; only load it here

    models: dict[str, FlowModel] = {}
    weights = shared_file("data", "hagenaars2021_liffirenet.pt")
    if weights is None:
        print("shared folder absent: the authors' pretrained LIF-FireNet is left out")
    else:
        models[AUTHORS_LIF] = prepare_model("LIFFireNet", weights, device=device)
    models[OURS_LIF] = prepare_model(None, ensure_trained("LIFFireNet", profile, progress=progress), device=device)
    models[OURS_ANN] = prepare_model(None, ensure_trained("FireNet", profile, progress=progress), device=device)
    return models


def shared_recordings() -> list[Path]:
    """The real recordings of the shared folder (``data/*.h5``), or [] where it is absent."""
    root = shared_dir()
    return sorted((root / "data").glob("*.h5")) if root is not None and (root / "data").is_dir() else []


class PaperDataset(NamedTuple):
    """One of the paper's evaluation sets: its folder under ``data/``, the protocols it is evaluated with, and
    where to get it."""

    folder: str
    protocols: tuple[str, ...]
    source: str


PAPER_DATASETS: dict[str, PaperDataset] = {
    "MVSEC": PaperDataset("mvsec", ("mvsec-dt1", "mvsec-dt4"),
                          "MVSEC (Zhu et al., RA-L 2018) outdoor_day1 and indoor_flying1-3, in the reference layout"),
    "ECD": PaperDataset("ecd", ("events",), "Event Camera Dataset (Mueggler et al., IJRR 2017), reference layout"),
    "HQF": PaperDataset("hqf", ("events",), "High Quality Frames (Stoffregen et al., ECCV 2020), reference layout"),
}


def paper_dataset_files(name: str) -> list[Path]:
    """The ``*.h5`` files of a paper data set under ``data/<folder>/`` (sorted), or [] where there are none."""
    folder = data_dir() / PAPER_DATASETS[name].folder
    return sorted(folder.glob("*.h5")) if folder.is_dir() else []


def evaluate_if_present(
    models: Mapping[str, FlowModel],
    files: Sequence[str | os.PathLike],
    protocol: str,
    what: str,
    **kwargs: Any,
) -> EvalResult | None:
    """:func:`eventflow.evaluate.evaluate_models` over ``files``, or None with a printed note naming ``what``
    where there are no files."""
    if not files:
        print(f"{what}: not present, skipped")
        return None
    return evaluate_models(models, list(files), protocol, **kwargs)


def evaluate_paper_datasets(models: Mapping[str, FlowModel], **kwargs: Any) -> dict[str, EvalResult]:
    """Every protocol of every paper data set found under ``data/`` (see :data:`PAPER_DATASETS`), keyed
    ``"<data set> <protocol>"``; prints where the absent ones go. Keyword arguments as
    :func:`eventflow.evaluate.evaluate_models`."""
    results: dict[str, EvalResult] = {}
    for name, ds in PAPER_DATASETS.items():
        files = paper_dataset_files(name)
        if not files:
            print(f"{name}: absent; put the authors' preprocessed files at {data_dir() / ds.folder}/*.h5 "
                  f"({ds.source}; download links in the tudelft/event_flow README)")
            continue
        for protocol in ds.protocols:
            results[f"{name} {protocol}"] = evaluate_models(models, files, protocol, **kwargs)
    return results


def published_comparison(results: Mapping[str, EvalResult], method: str, paper_model: str = "LIF-FireNet"
                         ) -> list[dict[str, Any]]:
    """Our per-sequence values of ``method`` next to the paper's (:func:`eventflow.paper.with_published`) for
    every paper data set in ``results`` (keys ``"<data set> <protocol>"`` of :func:`evaluate_paper_datasets`);
    without any, the paper's cells for ``paper_model`` (:func:`eventflow.paper.published_table`)."""
    rows: list[dict[str, Any]] = []
    for key, res in results.items():
        name, protocol = key.split(" ", 1)
        if method not in res.per_sequence:
            continue
        dataset = name if protocol == "events" else None
        for row in with_published(res.per_sequence[method], paper_model, protocol, res.metrics, dataset=dataset):
            rows.append({"data": key, **row})
    return rows or published_table(paper_model)
