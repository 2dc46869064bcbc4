"""Published numbers: only verified cells print as numbers."""

from __future__ import annotations

import math

from eventflow import paper


def test_verified_values_are_cells_of_the_paper_tables():
    known = {cell for model in {c.model for c in paper.VERIFIED} for cell in paper.table_cells(model)}
    for cell, value in paper.VERIFIED.items():
        assert cell in known, cell
        assert math.isfinite(value) and value >= 0


def test_unverified_cells_say_so():
    for cell in paper.table_cells("LIF-FireNet"):
        text = paper.published_text(*cell)
        assert text == paper.NOT_VERIFIED or cell in paper.VERIFIED
    assert len(paper.table_cells("LIF-FireNet")) == 2 * 4 * 2 + 2 * 2


def test_with_published_puts_the_paper_beside_our_sequences():
    rows = paper.with_published({"outdoor_day1_data": {"AEE": 1.0}, "test_00_coffee": {"AEE": 2.0}},
                                "LIF-FireNet", "mvsec-dt4", ["AEE"])
    assert rows[0]["AEE paper"] == paper.published_text("LIF-FireNet", "outdoor_day1", "mvsec-dt4", "AEE")
    assert rows[1]["AEE paper"] == "-"
    ecd = paper.with_published({"shapes_rotation": {"FWL": 1.2}}, "LIF-FireNet", "events", ["FWL"], dataset="ECD")
    assert ecd[0]["FWL paper"] == paper.published_text("LIF-FireNet", "ECD", "events", "FWL")
