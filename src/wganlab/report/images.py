"""The pictures of an image run's report: final sample grid, FID curves, class histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wganlab.observe.grids import GRIDS, save_grid
from wganlab.util.plotting import pyplot

GRID_PNG = "samples_grid.png"
HISTOGRAM_PNG = "class_histogram.png"
IMAGE_CURVES_PNG = "image_metrics.png"


def plot_class_histogram(counts: list[int], path: Path, title: str = "") -> None:
    plt = pyplot()
    counts = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(np.arange(len(counts)), counts / max(counts.sum(), 1), color="tab:blue")
    ax.axhline(1 / len(counts), color="black", ls="--", lw=1, label="uniform")
    ax.set_xticks(np.arange(len(counts)))
    ax.set_xlabel("predicted digit (evaluation network)")
    ax.set_ylabel("fraction of samples")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_image_metrics(evals: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    steps = [r["step"] for r in evals]
    axes[0].plot(steps, [r["fid"] for r in evals], "o-", label="FID")
    axes[0].set_yscale("log")
    axes[0].set_title(f"FID to held-out real images ({evals[-1].get('feature_space', '')} features)")
    axes[0].set_xlabel("generator step")
    ax = axes[1]
    for key, label in (("classes_covered", "classes covered of 10"), ("modes_captured", "modes captured of 1000")):
        if evals[-1].get(key) is not None:
            ax.plot(steps, [r.get(key) for r in evals], "o-", color="tab:green", label=label)
            ax.set_ylabel(label)
    for key in ("class_kl", "mode_kl"):
        if evals[-1].get(key) is not None:
            twin = ax.twinx()
            twin.plot(steps, [r.get(key) for r in evals], "s--", color="tab:purple", label=key)
            twin.set_ylabel(f"{key} (nats)")
    ax.set_title("coverage of the classes")
    ax.set_xlabel("generator step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def image_report_images(run_path: Path, records: list[dict], summary: dict, title: str) -> list[tuple[str, str]]:
    """Draws the image run's pictures into ``run_path``; returns (file, caption) pairs for the report."""
    shown = []
    samples_file = run_path / "samples.npy"
    if samples_file.is_file():
        save_grid(np.load(samples_file)[:64], run_path / GRID_PNG)
        shown.append((GRID_PNG, f"final samples: {title}"))
    evals = [r for r in records if r.get("kind") == "eval" and "fid" in r]
    if evals:
        plot_image_metrics(evals, run_path / IMAGE_CURVES_PNG)
        shown.append((IMAGE_CURVES_PNG, "FID and class coverage during training"))
    counts = summary.get("class_counts") or (evals[-1].get("class_counts") if evals else None)
    if counts:
        plot_class_histogram(counts, run_path / HISTOGRAM_PNG, title)
        shown.append((HISTOGRAM_PNG, "predicted class histogram of the final samples"))
    grids = sorted((run_path / GRIDS).glob("step-*.png"))
    for grid in grids[-6:]:
        step = int(grid.stem.split("-")[1])
        shown.append((f"{GRIDS}/{grid.name}", f"fixed-noise samples at step {step}"))
    return shown
