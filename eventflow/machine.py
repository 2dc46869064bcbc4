"""What machine a benchmark ran on, for its report: :func:`cpu_model`. Imports nothing heavy, so that the
simulator benchmark can use it without loading torch."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`, else the
    architecture).

    >>> isinstance(cpu_model(), str) and cpu_model() != ""
    True
    """
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"
