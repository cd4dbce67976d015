"""Built-in low-dimensional distributions: no download, exact densities known.

The mixtures follow the PacGAN / VEEGAN evaluation protocol so that figures compare with
the published tables:

* ``ring8``  -- 8 Gaussians with means (cos 2 pi k/8, sin 2 pi k/8), k = 0..7, sigma 0.01;
* ``grid25`` -- 25 Gaussians with means {-4, -2, 0, 2, 4}^2, sigma 0.05;
* ``swissroll`` -- the 2D swiss roll of the WGAN-GP toy code (no modes to count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from wganlab.core.params import Param
from wganlab.data.registry import DatasetEntry


@dataclass(frozen=True)
class GaussianMixture:
    """An equal-weight mixture of isotropic Gaussians.

    Attributes:
        name: registry name.
        means: (K, D) mode centres.
        sigma: standard deviation of every component.
    """

    name: str
    means: torch.Tensor
    sigma: float
    kind = "toy"

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def n_modes(self) -> int:
        return int(self.means.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Returns (n, D) float32 samples."""
        component = torch.randint(0, self.n_modes, (n,), generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.means[component] + self.sigma * noise


@dataclass(frozen=True)
class SwissRoll:
    """The WGAN-GP toy swiss roll: sklearn's make_swiss_roll(noise) in the (x, z) plane, / 7.5.

    Written out here (t = 1.5 pi (1 + 2u), point = t (cos t, sin t) + noise) so the package
    does not need scikit-learn for its default data.
    """

    name: str = "swissroll"
    sigma: float = 0.25
    scale: float = 7.5
    means = None
    n_modes = 0
    dim = 2
    shape = (2,)
    kind = "toy"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
        points = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
        points = points + self.sigma * torch.randn(n, 2, generator=generator)
        return points / self.scale


def ring(n_modes: int = 8, radius: float = 1.0, sigma: float = 0.01) -> GaussianMixture:
    # k / n_modes for k = 0..n-1, not linspace(0, 2 pi, n): that repeats the first mode.
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(f"ring{n_modes}", means.float(), sigma)


def grid(side: int = 5, spacing: float = 2.0, sigma: float = 0.05) -> GaussianMixture:
    offsets = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(offsets, offsets, indexing="ij")
    means = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return GaussianMixture(f"grid{side * side}", means.float(), sigma)


def _positive(key: str) -> Param:
    return Param(key, lambda v: v is None or v > 0, "must be > 0")


# the built-in toy sets; a new one is its builder and one entry here
DATASETS = (
    DatasetEntry("ring8", "toy", (2,), "8 Gaussians on the unit circle, sigma 0.01 (PacGAN)",
                 lambda radius=None, sigma=None: ring(8, radius=_given(radius, 1.0), sigma=_given(sigma, 0.01)),
                 (_positive("radius"), _positive("sigma"))),
    DatasetEntry("grid25", "toy", (2,), "25 Gaussians on {-4, -2, 0, 2, 4}^2, sigma 0.05 (PacGAN)",
                 lambda spacing=None, sigma=None: grid(5, spacing=_given(spacing, 2.0), sigma=_given(sigma, 0.05)),
                 (_positive("spacing"), _positive("sigma"))),
    DatasetEntry("swissroll", "toy", (2,), "the WGAN-GP toy swiss roll",
                 lambda sigma=None: SwissRoll(sigma=_given(sigma, 0.25)), (_positive("sigma"),)),
)
TOY_DATASETS = tuple(entry.name for entry in DATASETS)


def _given(value, default):
    return default if value is None else value


def make_toy(name: str, **values):
    """Builds a built-in distribution from the config ``values`` its entry declares (radius,
    sigma, spacing, ...; others are ignored); None keeps the published default of each."""
    entries = {entry.name: entry for entry in DATASETS}
    if name not in entries:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(TOY_DATASETS)}")
    entry = entries[name]
    return entry.build(**{p.key: values[p.key] for p in entry.params if p.key in values})
