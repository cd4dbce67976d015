"""The exact W1 between two point clouds, numpy and POT only (no torch), so that a side
process (``wganlab.util.sidecar``, ``transport``) can solve it while the run goes on."""

from __future__ import annotations

import numpy as np


def exact_w1(a: np.ndarray, b: np.ndarray, max_iterations: int = 10_000_000) -> float:
    """Optimal transport cost between the uniform measures on the rows of ``a`` and ``b``,
    Euclidean ground distance, by POT's network simplex (``ot.emd2``)."""
    import ot  # POT: slow to import, and only this needs it

    cost = ot.dist(a, b, metric="euclidean")
    weights_a = np.full(len(a), 1.0 / len(a))
    weights_b = np.full(len(b), 1.0 / len(b))
    return float(ot.emd2(weights_a, weights_b, cost, numItermax=max_iterations))
