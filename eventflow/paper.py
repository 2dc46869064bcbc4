"""The published numbers of Hagenaars, Paredes-Vallés & de Croon (NeurIPS 2021), for printing next to ours.

Rule: a number enters :data:`VERIFIED` only after it was checked against the paper itself (not a citing paper,
not a summary), with the table and page in a comment beside it. Every other cell of the paper's tables is
reported as ``"(not verified)"`` and never printed as a fact.

What the paper reports (Sec. 4.1; shared reference notes, Sec. 6): MVSEC ``outdoor_day1`` and
``indoor_flying1``-``3`` at dt=1 and dt=4 (AEE [px] and % outliers), and ECD and HQF (FWL, RSAT), for the
models of its zoo.

Status: the paper's tables could not be read from any source available to this project when this module was
written (the stored copies of the paper give its text but not its tables), so :data:`VERIFIED` is empty and
every cell prints ``"(not verified)"``. To add a value, check it against the paper (NeurIPS 2021 proceedings
or arXiv:2106.01862) and add ``Cell(...): value,  # Table N, p. M`` to :data:`VERIFIED`.

>>> published_text("LIF-FireNet", "indoor_flying1", "mvsec-dt1", "AEE")
'(not verified)'
>>> CITATION.split(" (2021)")[0]
'Hagenaars, J. J., Paredes-Vallés, F., & de Croon, G. C. H. E.'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

CITATION = (
    "Hagenaars, J. J., Paredes-Vallés, F., & de Croon, G. C. H. E. (2021). Self-Supervised Learning of "
    "Event-Based Optical Flow with Spiking Neural Networks. Advances in Neural Information Processing Systems 34 "
    "(NeurIPS 2021). arXiv:2106.01862."
)
NOT_VERIFIED = "(not verified)"

MVSEC_SEQUENCES = ("outdoor_day1", "indoor_flying1", "indoor_flying2", "indoor_flying3")
EVENT_DATASETS = ("ECD", "HQF")


class Cell(NamedTuple):
    """One number of the paper's tables: ``model`` (the paper's label, e.g. ``"LIF-FireNet"``), ``sequence``
    (an MVSEC sequence, or ``"ECD"``/``"HQF"``), ``protocol`` (``"mvsec-dt1"``, ``"mvsec-dt4"``, ``"events"``)
    and ``metric`` (``"AEE"``, ``"outliers_pct"``, ``"FWL"``, ``"RSAT"``)."""

    model: str
    sequence: str
    protocol: str
    metric: str


#: Values checked against the paper, each with its table and page in a comment. Empty: see the module docstring.
VERIFIED: dict[Cell, float] = {}


def table_cells(model: str) -> list[Cell]:
    """The cells the paper reports for one model: MVSEC at dt=1 and dt=4 (AEE, % outliers) per sequence, and
    FWL and RSAT on ECD and HQF."""
    cells = [Cell(model, seq, proto, metric) for proto in ("mvsec-dt1", "mvsec-dt4") for seq in MVSEC_SEQUENCES
             for metric in ("AEE", "outliers_pct")]
    cells += [Cell(model, ds, "events", metric) for ds in EVENT_DATASETS for metric in ("FWL", "RSAT")]
    return cells


def published(model: str, sequence: str, protocol: str, metric: str) -> float | None:
    """The verified published value of a cell, or None where it is not verified."""
    return VERIFIED.get(Cell(model, sequence, protocol, metric))


def published_text(model: str, sequence: str, protocol: str, metric: str, digits: int = 2) -> str:
    """The verified value formatted with ``digits`` decimals, or ``"(not verified)"``."""
    value = published(model, sequence, protocol, metric)
    return NOT_VERIFIED if value is None else f"{value:.{digits}f}"


def match_sequence(name: str) -> str | None:
    """The paper's sequence (or data set) a recording stem refers to, e.g. ``"indoor_flying1_data"`` ->
    ``"indoor_flying1"``; None if it is none of them.

    >>> match_sequence("indoor_flying2_data"), match_sequence("test_00_coffee_perspective")
    ('indoor_flying2', None)
    """
    for seq in MVSEC_SEQUENCES:
        if name == seq or name.startswith(seq + "_") or name.startswith(seq + "."):
            return seq
    return None


def with_published(per_sequence: Mapping[str, Mapping[str, float]], model: str, protocol: str,
                   metrics: Sequence[str], dataset: str | None = None) -> list[dict[str, Any]]:
    """Rows of our per-sequence values (``EvalResult.per_sequence[method]``) with the paper's beside them:
    ``{"sequence", "<metric> ours", "<metric> paper"}``; the paper's cell is the verified value or
    ``"(not verified)"``, and ``-`` for a sequence or metric the paper does not report. For the ``events`` protocol,
    ``dataset`` (``"ECD"`` or ``"HQF"``) names the cells to compare with (this module keys them by data set).

    >>> rows = with_published({"indoor_flying1_data": {"AEE": 0.8}}, "LIF-FireNet", "mvsec-dt1", ["AEE"])
    >>> rows[0]["sequence"], rows[0]["AEE ours"], rows[0]["AEE paper"]
    ('indoor_flying1_data', 0.8, '(not verified)')
    """
    reported = set(table_cells(model))
    rows = []
    for name, values in per_sequence.items():
        paper_seq = dataset if protocol == "events" else match_sequence(name)
        row: dict[str, Any] = {"sequence": name}
        for metric in metrics:
            cell = Cell(model, paper_seq or "", protocol, metric)
            row[f"{metric} ours"] = values.get(metric)
            row[f"{metric} paper"] = published_text(*cell) if cell in reported else "-"
        rows.append(row)
    return rows


def published_table(model: str) -> list[dict[str, str]]:
    """Every cell the paper reports for ``model`` with its verified value or ``"(not verified)"``, as rows for
    :func:`eventflow.evaluate.format_table`."""
    return [{"model": c.model, "data": c.sequence, "protocol": c.protocol, "metric": c.metric,
             "paper": published_text(*c)} for c in table_cells(model)]
