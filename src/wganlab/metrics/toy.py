"""Sample-quality metrics with known answers. Metrics read samples; they never import the trainer.

Mode metrics follow the PacGAN / VEEGAN protocol for Gaussian mixtures:

* a sample is *high quality* if it lies within 3 sigma of its nearest mode's mean;
* a mode is *captured* if at least one high-quality sample is nearest to it;
* reverse KL = KL(histogram of high-quality samples over modes || uniform), natural log.

The Wasserstein-1 distance is exact: the optimal-transport cost between two equal-size
point clouds with Euclidean ground cost, solved by POT's network simplex (``ot.emd2``).

References:
    Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial networks".
    Srivastava et al. 2017, "VEEGAN".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wganlab.util import sidecar
from wganlab.util.interrupt import held_interrupt


def _as_points(samples, name: str = "samples") -> torch.Tensor:
    points = torch.as_tensor(np.asarray(samples) if not torch.is_tensor(samples) else samples).detach().cpu()
    if points.dim() != 2 or points.shape[0] < 1:
        raise ValueError(f"{name} must be an (N, D) array of points, got shape {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        bad = int((~torch.isfinite(points)).any(dim=1).sum())
        raise ValueError(f"{name} contains {bad} rows with NaN or Inf; remove them or re-sample the generator")
    return points.double()


def mode_metrics(samples, means, sigma: float, quality_sigmas: float = 3.0) -> dict:
    """Mode coverage, high-quality fraction and reverse KL of ``samples`` on a Gaussian mixture.

    Args:
        samples: (N, D) points.
        means: (K, D) mode centres.
        sigma: the components' standard deviation.
    Returns:
        dict with ``modes_captured`` (int), ``n_modes`` (K), ``high_quality_fraction`` in
        [0, 1], ``reverse_kl`` (nats, in [0, log K]; None when no sample is high quality)
        and ``mode_counts`` (high-quality samples nearest to each mode).
    """
    points = _as_points(samples)
    means = torch.as_tensor(means).double()
    if means.dim() != 2 or means.shape[1] != points.shape[1]:
        raise ValueError(f"samples have dimension {points.shape[1]} but the modes have shape {tuple(means.shape)}")
    distance, nearest = torch.cdist(points, means).min(dim=1)
    high_quality = distance <= quality_sigmas * sigma
    counts = torch.bincount(nearest[high_quality], minlength=means.shape[0])
    n_hq = int(counts.sum())
    if n_hq:
        p = counts[counts > 0].double() / n_hq
        reverse_kl = float((p * torch.log(p * means.shape[0])).sum())
    else:
        reverse_kl = None
    return {
        "modes_captured": int((counts > 0).sum()),
        "n_modes": int(means.shape[0]),
        "high_quality_fraction": n_hq / points.shape[0],
        "reverse_kl": reverse_kl,
        "mode_counts": counts.tolist(),
    }


def wasserstein1(x, y, max_iterations: int = 10_000_000) -> float:
    """Exact W1 between the empirical measures of two point clouds (uniform weights).

    Args:
        x: (N, D) points; y: (M, D) points.
    Returns:
        The optimal transport cost with Euclidean ground distance.
    """
    return wasserstein1_pending(x, y, max_iterations)()


def wasserstein1_pending(x, y, max_iterations: int = 10_000_000):
    """:func:`wasserstein1` started in the transport side process where it runs (solved here at
    once where none does); the function returned waits for the value."""
    a = _as_points(x, "x").numpy()
    b = _as_points(y, "y").numpy()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"point clouds differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    with held_interrupt():  # the import of POT, where no side process has it loaded already
        solving = sidecar.submit("transport", "wganlab.metrics.transport:exact_w1", a, b, max_iterations)

    def value() -> float:
        with held_interrupt():
            return float(solving.result())

    return value


def evaluate_toy(samples, dataset, n_real: int = 2000, seed: int = 0) -> dict:
    """All toy metrics of ``samples`` against a built-in distribution.

    W1 uses the first ``n_real`` samples (or all, if fewer) against as many fresh real
    samples drawn with ``seed``, so equal inputs give equal figures.
    """
    return evaluate_toy_pending(samples, dataset, n_real, seed)()


def evaluate_toy_pending(samples, dataset, n_real: int = 2000, seed: int = 0):
    """:func:`evaluate_toy` with its exact W1 left solving (in the transport side process where it
    runs): the caller does other work, then calls the function returned for the metrics."""
    points = _as_points(samples)
    if points.shape[1] != dataset.dim:
        raise ValueError(f"samples have dimension {points.shape[1]}, but {dataset.name} is {dataset.dim}-dimensional")
    n = min(n_real, points.shape[0])
    real = dataset.sample(n, generator=torch.Generator().manual_seed(seed))
    w1 = wasserstein1_pending(points[:n], real)
    result: dict = {"n_samples": int(points.shape[0])}
    if dataset.n_modes:
        result.update(mode_metrics(points, dataset.means, dataset.sigma))

    def metrics() -> dict:
        return {**result, "w1": w1(), "w1_samples": n}

    return metrics


def read_npy(path: str | Path) -> np.ndarray:
    """One array from a ``.npy`` file of samples (any shape); a missing, damaged or ``.npz`` file
    is refused with a clear reason."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"samples file {path} does not exist")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for a damaged file
        from wganlab.util.files import array_file_problem

        raise ValueError(array_file_problem(path, error)) from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise ValueError(f"{path} is an .npz archive; give one .npy array of samples")
    return array


def load_samples(path: str | Path) -> np.ndarray:
    """Reads an (N, D) ``.npy`` file of samples and refuses anything else with a clear reason."""
    array = read_npy(path)
    if array.ndim != 2:
        raise ValueError(f"{path} holds shape {array.shape}; samples must be (N, D), one point per row")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path} holds dtype {array.dtype}; samples must be numeric")
    _as_points(array, str(path))
    return array

