import math

import pytest
import torch
from torch.testing import assert_close

from wganlab.data import make_toy


def test_ring8_has_eight_distinct_modes_on_the_unit_circle():
    ring = make_toy("ring8")
    assert ring.n_modes == 8 and ring.sigma == 0.01
    assert_close(ring.means.norm(dim=1), torch.ones(8))
    # consecutive modes 2 pi / 8 apart: no duplicated endpoint as linspace(0, 2 pi, 8) would give
    assert_close(torch.pdist(ring.means).min(), torch.tensor(2 * math.sin(math.pi / 8)))
    assert_close(ring.means[2], torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)


def test_grid25_means_and_parameters():
    grid = make_toy("grid25")
    assert grid.n_modes == 25 and grid.sigma == 0.05
    assert sorted(set(grid.means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    wide = make_toy("grid25", spacing=3.0, sigma=0.1)
    assert wide.means.max() == 6.0 and wide.sigma == 0.1
    assert make_toy("ring8", radius=2.0).means.norm(dim=1).max() == pytest.approx(2.0)


def test_samples_have_the_stated_spread_and_are_seeded():
    ring = make_toy("ring8")
    a = ring.sample(20000, generator=torch.Generator().manual_seed(1))
    b = ring.sample(20000, generator=torch.Generator().manual_seed(1))
    assert_close(a, b)
    offsets = a - ring.means[torch.cdist(a, ring.means).argmin(1)]
    assert offsets.std().item() == pytest.approx(0.01, rel=0.03)


def test_swissroll_is_in_the_unit_box_and_unknown_names_are_refused():
    points = make_toy("swissroll").sample(5000, generator=torch.Generator().manual_seed(0))
    assert points.shape == (5000, 2) and points.abs().max() < 2.0
    with pytest.raises(ValueError, match="choose one of: ring8, grid25, swissroll"):
        make_toy("ring9")
