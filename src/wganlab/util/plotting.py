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


# a title at a fixed height just above its axes: matplotlib's automatic placement measures the
# tick labels of every axes once more at each save (the report's curves picture: median 0.279 s
# against 0.319 s, 8 draws each, alternated), and ours have nothing above the axes to avoid
TITLE_Y = 1.0
