"""A user's own points, held in memory: an (N, D) NumPy array or tensor as a dataset."""

from __future__ import annotations

import numpy as np
import torch


class ArrayDataset:
    """Draws training batches from a fixed (N, D) array of points, with replacement.

    Args:
        points: (N, D) numeric array or tensor, N >= 2, no NaN or Inf. Kept as float32.
        name: how runs and summaries name this data.

    It has no modes to count (``n_modes`` 0), so evaluations report the exact W1 only.
    """

    means = None
    n_modes = 0
    kind = "toy"  # points: scored by the toy metrics (exact W1)

    def __init__(self, points, name: str = "array"):
        if torch.is_tensor(points):
            points = points.detach().cpu().numpy()
        array = np.asarray(points)
        if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
            raise ValueError(f"data must be an (N, D) array of points with N >= 2, got shape {array.shape}; "
                             f"reshape it to one point per row")
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise ValueError(f"data must be real numbers, got dtype {array.dtype}")
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        if bad:
            raise ValueError(f"data has {bad} rows with NaN or Inf; drop them before training")
        self.points = torch.as_tensor(array, dtype=torch.float32).contiguous()
        self.name = name

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, D) float32 rows drawn uniformly with replacement."""
        return self.points[torch.randint(0, len(self), (n,), generator=generator)]
