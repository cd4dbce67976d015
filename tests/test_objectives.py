import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from wganlab.objectives import OBJECTIVES, get_objective, minimax, non_saturating, wasserstein


def _numpy_sigmoid(s):
    return 1 / (1 + np.exp(-s))


SCORES_REAL = torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=torch.float64)
SCORES_FAKE = torch.tensor([-2.0, 0.0, 1.5, -0.5], dtype=torch.float64)


def test_classifier_losses_match_cross_entropy_computed_in_numpy():
    d_real = _numpy_sigmoid(SCORES_REAL.numpy())
    d_fake = _numpy_sigmoid(SCORES_FAKE.numpy())
    losses = minimax(SCORES_REAL, SCORES_FAKE)
    assert_close(losses.critic_real, torch.tensor(-np.log(d_real).mean(), dtype=torch.float64))
    assert_close(losses.critic_fake, torch.tensor(-np.log(1 - d_fake).mean(), dtype=torch.float64))
    assert_close(losses.critic, losses.critic_real + losses.critic_fake)
    # minimax: G minimises E log(1 - D(G(z)))
    assert_close(losses.generator, torch.tensor(np.log(1 - d_fake).mean(), dtype=torch.float64))
    # non-saturating: G minimises -E log D(G(z))
    assert_close(non_saturating(SCORES_REAL, SCORES_FAKE).generator,
                 torch.tensor(-np.log(d_fake).mean(), dtype=torch.float64))


def test_minimax_generator_really_saturates_and_non_saturating_does_not():
    # A confident discriminator: D(G(z)) = sigmoid(-20) ~ 2e-9.
    fake = torch.full((4,), -20.0, requires_grad=True)
    (grad_minimax,) = torch.autograd.grad(minimax.generator(fake), fake)
    (grad_ns,) = torch.autograd.grad(non_saturating.generator(fake), fake)
    # d/ds of -softplus(s) is -sigmoid(s): ~ -2e-9 / 4 per sample; of softplus(-s) is -(1 - sigmoid(s)) ~ -1/4.
    assert grad_minimax.abs().max() < 1e-8
    assert_close(grad_ns, torch.full((4,), -0.25), atol=1e-6, rtol=0)


def test_softplus_forms_stay_finite_at_extreme_scores():
    extreme = torch.tensor([-1e4, 1e4])
    for objective in OBJECTIVES.values():
        losses = objective(extreme, extreme)
        assert all(torch.isfinite(value) for value in losses)


def test_wasserstein_parts():
    losses = wasserstein(SCORES_REAL, SCORES_FAKE)
    assert_close(losses.critic, SCORES_FAKE.mean() - SCORES_REAL.mean())
    assert_close(losses.critic_real, -SCORES_REAL.mean())
    assert_close(losses.critic_fake, SCORES_FAKE.mean())
    assert_close(losses.generator, -SCORES_FAKE.mean())


def test_scores_of_shape_b_by_1_give_the_same_losses():
    for objective in OBJECTIVES.values():
        flat = objective(SCORES_REAL, SCORES_FAKE)
        column = objective(SCORES_REAL[:, None], SCORES_FAKE[:, None])
        for a, b in zip(flat, column):
            assert_close(a, b)


def test_bad_shapes_and_names_are_refused():
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, 1\)"):
        wasserstein(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="choose one of: minimax, non-saturating, wasserstein, lsgan, hinge, began"):
        get_objective("lsgan-typo")


def test_optimal_discriminator_loss_is_2_log_2_at_equilibrium():
    # D = 1/2 everywhere (scores 0): the critic loss is -2 log(1/2) = 2 log 2, i.e. JS = 0.
    zeros = torch.zeros(16)
    assert_close(minimax(zeros, zeros).critic, torch.tensor(2 * math.log(2)))
