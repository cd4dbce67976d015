"""Pictures of image runs: sample grids at every evaluation, the class histogram, FID curves.

:class:`SampleGrids` is a Trainer callback: at each eval record it draws a fixed-noise grid
of the reported generator into ``RUN/grids/step-NNNNNNN.png`` (the same z every time, so
the grids show one set of samples changing over training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

GRIDS = "grids"
GRID_PNG = "samples_grid.png"
HISTOGRAM_PNG = "class_histogram.png"
IMAGE_CURVES_PNG = "image_metrics.png"


def grid_array(images, nrow: int = 8, padding: int = 2, scale: int = 2) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] -> one (rows * (H+pad), ...) uint8 grid, grey (2-D) or RGB (3-D)."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images).float().cpu()
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"a sample grid needs (N, 1 or 3, H, W) images, got {tuple(x.shape)}")
    n, c, h, w = x.shape
    rows = -(-n // nrow)
    canvas = torch.ones(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        canvas[:, top:top + h, left:left + w] = x[i]
    pixels = ((canvas.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return pixels[0].numpy() if c == 1 else pixels.permute(1, 2, 0).numpy()


def save_grid(images, path: str | Path, nrow: int = 8) -> Path:
    """Writes a PNG grid of (N, C, H, W) images in [-1, 1], atomically."""
    import io

    from PIL import Image

    from wganlab.runfolder import atomic_write_bytes

    buffer = io.BytesIO()
    Image.fromarray(grid_array(images, nrow)).save(buffer, format="PNG", optimize=True)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


class SampleGrids:
    """Trainer callback: a 64-sample grid of fixed noise at every evaluation (image data only)."""

    def __init__(self, folder: str | Path, n: int = 64, seed: int = 12345):
        self.folder = Path(folder)
        self.n, self.seed = n, seed

    def on_record(self, trainer, record: dict) -> None:
        if record.get("kind") != "eval" or getattr(trainer.dataset, "kind", "toy") != "image":
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        save_grid(trainer.sample(self.n, seed=self.seed), self.folder / f"step-{record['step']:07d}.png")


def plot_class_histogram(counts: list[int], path: Path, title: str = "") -> None:
    from wganlab.report import _pyplot

    plt = _pyplot()
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
    from wganlab.report import _pyplot

    plt = _pyplot()
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
