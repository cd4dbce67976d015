"""matplotlib for files only, imported on first use (it costs a second at start-up)."""

from __future__ import annotations

from wganlab.util.interrupt import held_interrupt


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: no display on servers and CI."""
    with held_interrupt():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt
