"""Critic-guided sampling: discriminator rejection sampling on known mixtures."""

import math

import torch

from wganlab.core.refinement import acceptance_probability, platt_scaling, rejection_sample
from wganlab.data.toy import make_toy
from wganlab.metrics.toy import mode_metrics

RING = make_toy("ring8")
BOX = 1.5  # the background of the flawed generator: uniform on [-1.5, 1.5]^2


def _log_ring_density(x):
    d2 = (x.unsqueeze(1) - RING.means.unsqueeze(0)).pow(2).sum(-1).double()
    log_components = -d2 / (2 * RING.sigma ** 2) - math.log(2 * math.pi * RING.sigma ** 2)
    return torch.logsumexp(log_components, dim=1) - math.log(RING.n_modes)


def _flawed_draw(good: float):
    """A generator with a known density: the ring with probability ``good``, else uniform on the
    box; each draw's logits are the exact log ratio log p_data / p_g."""
    def draw(count, seed):
        g = torch.Generator().manual_seed(seed)
        on_ring = torch.rand(count, generator=g) < good
        x = torch.where(on_ring.unsqueeze(1), RING.sample(count, generator=g),
                        (torch.rand(count, 2, generator=g) * 2 - 1) * BOX)
        log_data = _log_ring_density(x)
        log_model = torch.logaddexp(math.log(good) + log_data,
                                    torch.full_like(log_data, math.log(1 - good) - math.log((2 * BOX) ** 2)))
        return x, log_data - log_model
    return draw


def test_platt_scaling_recovers_the_bayes_logit_of_two_gaussians():
    # scores ~ N(+1, 1) on real, N(-1, 1) on fake: log N(s; 1, 1) / N(s; -1, 1) = 2 s
    g = torch.Generator().manual_seed(0)
    a, b = platt_scaling(torch.randn(20_000, generator=g) + 1, torch.randn(20_000, generator=g) - 1)
    assert abs(a - 2) < 0.1 and abs(b) < 0.05
    # a score that says nothing: a ~ 0, so every sample is accepted alike
    a, b = platt_scaling(torch.randn(5_000, generator=g), torch.randn(5_000, generator=g))
    assert abs(a) < 0.1 and abs(b) < 0.05


def test_acceptance_is_the_exact_ratio_for_gamma_0_and_higher_with_gamma():
    logits = torch.tensor([-5.0, -1.0, 0.0])
    assert torch.allclose(acceptance_probability(logits, 0.0), torch.exp(logits.double()), atol=1e-5)
    assert (acceptance_probability(logits, 0.0, gamma=-2.0) > acceptance_probability(logits, 0.0)).all()


def test_rejection_raises_high_quality_and_keeps_every_mode_on_a_known_mixture():
    draw = _flawed_draw(good=0.7)
    plain, _ = draw(5_000, 123)
    refined, stats = rejection_sample(draw, 5_000, seed=1)
    before = mode_metrics(plain, RING.means, RING.sigma)
    after = mode_metrics(refined, RING.means, RING.sigma)
    assert before["high_quality_fraction"] < 0.75 < 0.97 < after["high_quality_fraction"]
    assert after["modes_captured"] >= before["modes_captured"] == 8
    assert after["reverse_kl"] < 0.02
    assert 0.6 < stats["acceptance"] < 0.8  # the ring's share, 0.7, is what an exact sampler keeps


def test_samples_that_are_already_perfect_pass_unchanged():
    # the generator is the data: the log ratio is 0 everywhere, so DRS accepts every candidate
    def draw(count, seed):
        return RING.sample(count, generator=torch.Generator().manual_seed(seed)), torch.zeros(count)

    refined, stats = rejection_sample(draw, 2_500, seed=3)
    assert stats["acceptance"] > 0.999
    assert torch.equal(refined, draw(10_000, 4)[0][:2_500])  # the first candidates, as drawn
