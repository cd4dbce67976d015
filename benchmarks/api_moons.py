"""The README's five-line Python API example on a user's own array: two moons of 5,000 points.

    OMP_NUM_THREADS=1 python benchmarks/api_moons.py

Prints the run's exact W1 against the data, with two references: fresh real moons (the
floor a perfect generator reaches at this sample size) and standard normal noise.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

import wganlab


def two_moons(n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """(n, 2) points on sklearn's two interleaved half circles, written out to need no sklearn."""
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "points.npy"
        np.save(path, two_moons(5000, rng))
        started = time.perf_counter()
        # the README's five lines
        points = np.load(path)
        run = wganlab.train(data=points, threads=1)
        print(f"W1 of the trained generator: {run.metrics['w1']:.4f} "
              f"({run.metrics['steps']} steps, {time.perf_counter() - started:.0f} s)")
        fake = run.sample(1000)
        assert fake.shape == (1000, 2)
    print(f"fresh real moons vs the data: {wganlab.evaluate(two_moons(2000, rng), points)['w1']:.4f}")
    print(f"N(0, I) noise vs the data:    {wganlab.evaluate(rng.standard_normal((2000, 2)), points)['w1']:.4f}")


if __name__ == "__main__":
    main()
