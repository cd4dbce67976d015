"""The pictures of an image run's report: final sample grid, FID curves, class histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wganlab.observe.grids import GRIDS, save_grid
from wganlab.report.image_plots import plot_class_histogram, plot_image_metrics  # noqa: F401 (re-exported)
from wganlab.util import sidecar

GRID_PNG = "samples_grid.png"
HISTOGRAM_PNG = "class_histogram.png"
IMAGE_CURVES_PNG = "image_metrics.png"


def image_report_images(run_path: Path, records: list[dict], summary: dict, title: str) -> list[tuple[str, str]]:
    """Draws the image run's pictures into ``run_path``; returns (file, caption) pairs for the report."""
    shown, drawn = [], []
    evals = [r for r in records if r.get("kind") == "eval" and "fid" in r]
    counts = summary.get("class_counts") or (evals[-1].get("class_counts") if evals else None)
    # the two plots in the figures side process where it runs (else here), the grid meanwhile
    if evals:
        drawn.append(sidecar.submit("figures", "wganlab.report.image_plots:plot_image_metrics", evals,
                                    run_path / IMAGE_CURVES_PNG))
    if counts:
        drawn.append(sidecar.submit("figures", "wganlab.report.image_plots:plot_class_histogram", list(counts),
                                    run_path / HISTOGRAM_PNG, title))
    samples_file = run_path / "samples.npy"
    if samples_file.is_file():
        save_grid(np.load(samples_file)[:64], run_path / GRID_PNG)
        shown.append((GRID_PNG, f"final samples: {title}"))
    if evals:
        shown.append((IMAGE_CURVES_PNG, "FID and class coverage during training"))
    if counts:
        shown.append((HISTOGRAM_PNG, "predicted class histogram of the final samples"))
    for picture in drawn:
        picture.result()
    grids = sorted((run_path / GRIDS).glob("step-*.png"))
    for grid in grids[-6:]:
        step = int(grid.stem.split("-")[1])
        shown.append((f"{GRIDS}/{grid.name}", f"fixed-noise samples at step {step}"))
    return shown
