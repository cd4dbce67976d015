"""How much memory the machine has for a run: sizes are compared with it before anything is allocated."""

from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes a run may use: ``$WGANLAB_MEMORY_LIMIT`` if set, else the memory Linux reports as
    available (``MemAvailable``), else the physical memory."""
    limit = os.environ.get("WGANLAB_MEMORY_LIMIT")
    if limit:
        return int(float(limit))
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def memory_budget() -> float:
    """Bytes one command may plan to hold: 80% of :func:`available_memory`, leaving room for
    what the estimates leave out (the interpreter, torch's own buffers)."""
    return 0.8 * available_memory()


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "bytes" else f"{int(n)} bytes"
        n /= 1000
    return f"{n:.3g} PB"


def largest_fitting(need, value: int, budget: float) -> int:
    """The largest integer v <= value with ``need(v) <= budget`` (``need`` grows with v), or 0."""
    low, high = 0, value
    while low < high:
        mid = (low + high + 1) // 2
        if need(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low
