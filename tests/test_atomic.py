"""Atomic writes keep the old file on failure; the folder lock makes a second holder wait for the first."""

from __future__ import annotations

import threading
import time

import pytest

from eventflow.atomic import atomic_path, folder_lock


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary left behind


def test_folder_lock_serialises_holders(tmp_path):
    order: list[str] = []
    entered = threading.Event()

    def first() -> None:
        with folder_lock(tmp_path / "run"):
            order.append("first in")
            entered.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait()
    with folder_lock(tmp_path / "run"):  # a separate open file description: waits for the first holder
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
