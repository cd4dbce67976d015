"""LSGAN (Mao et al. 2017) with targets a = 0 (fake), b = 1 (real), c = 1 (the generator's)."""

from __future__ import annotations

import torch

from wganlab.core.objectives.base import CriticLoss, Objective


def least_squares_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """LSGAN with targets b = 1 (real), a = 0 (fake): 1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2."""
    real = 0.5 * (real_scores - 1).pow(2).mean()
    fake = 0.5 * fake_scores.pow(2).mean()
    return CriticLoss(real + fake, real, fake)


def least_squares_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of (s - 1)^2 / 2 and of s^2 / 2, per sample."""
    return real_scores - 1, fake_scores.clone()


def least_squares_generator_loss(fake_scores: torch.Tensor, real_scores: torch.Tensor | None = None) -> torch.Tensor:
    """LSGAN with target c = 1: G minimises 1/2 E (D(G(z)) - 1)^2."""
    return 0.5 * (fake_scores - 1).pow(2).mean()


lsgan = Objective("lsgan", least_squares_critic_loss, least_squares_generator_loss,
                  description="least squares GAN (targets 0, 1, 1)", decision_threshold=0.5,
                  critic_sample_grads=least_squares_critic_sample_grads)
OBJECTIVES = (lsgan,)
