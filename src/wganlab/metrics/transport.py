"""The exact W1 between two point clouds, numpy and POT only (no torch), so that a side
process (``wganlab.util.sidecar``, ``transport``) can solve it while the run goes on."""

from __future__ import annotations

import numpy as np


def exact_w1(a: np.ndarray, b: np.ndarray, max_iterations: int = 10_000_000) -> float:
    """Optimal transport cost between the uniform measures on the rows of ``a`` and ``b``,
    Euclidean ground distance, by POT's network simplex (``ot.emd2``).

    Solved as the transport from ``b`` to ``a`` (W1 is symmetric): with the real data as ``b``,
    the simplex pivots less when the generated points nearly coincide, as a young generator's
    do (2,000 x 2,000, one core: 0.51-0.56 s against 0.70-0.83 s for one-step generators of
    three presets; never slower on trained or spread-out samples); the value agrees to 1e-8.
    """
    import ot  # POT: slow to import, and only this needs it
    from scipy.spatial.distance import cdist  # imported by POT already

    # scipy's direct distances: ~10 ms for 2,000 x 2,000 against ~25 ms for ot.dist's expanded
    # |a|^2 + |b|^2 - 2ab (which also rounds coincident points to ~1e-8 instead of 0)
    cost = cdist(b, a)
    weights_a = np.full(len(a), 1.0 / len(a))
    weights_b = np.full(len(b), 1.0 / len(b))
    return float(ot.emd2(weights_b, weights_a, cost, numItermax=max_iterations))
