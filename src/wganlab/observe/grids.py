"""Sample grids of image runs: a fixed-noise grid at every evaluation.

:class:`SampleGrids` is a Trainer callback: at each eval record it draws a fixed-noise grid
of the reported generator into ``RUN/grids/step-NNNNNNN.png`` (the same z every time, so
the grids show one set of samples changing over training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

GRIDS = "grids"


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

    from wganlab.util.files import atomic_write_bytes

    buffer = io.BytesIO()
    Image.fromarray(grid_array(images, nrow)).save(buffer, format="PNG")  # optimize=True: 0.5% smaller for 9x the time (0.45 s a colour grid)
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
