"""The Wasserstein game (Arjovsky, Chintala, Bottou 2017): the critic f estimates W1 by
Kantorovich-Rubinstein duality, max E f(x) - E f(G(z)) over 1-Lipschitz f."""

from __future__ import annotations

import torch

from wganlab.core.objectives.base import CriticLoss, Objective


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """The critic maximises E f(x) - E f(G(z)), i.e. minimises its negative."""
    real = -real_scores.mean()
    fake = fake_scores.mean()
    return CriticLoss(real + fake, real, fake)


def wasserstein_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of -s and of s, per sample."""
    return torch.full_like(real_scores, -1.0), torch.ones_like(fake_scores)


def wasserstein_generator_loss(fake_scores: torch.Tensor, real_scores: torch.Tensor | None = None) -> torch.Tensor:
    """G minimises -E f(G(z))."""
    return -fake_scores.mean()


wasserstein = Objective("wasserstein", wasserstein_critic_loss, wasserstein_generator_loss,
                        description="WGAN, the critic estimates W1 (pair with clip or gradient-penalty)",
                        wasserstein=True, critic_sample_grads=wasserstein_critic_sample_grads)
OBJECTIVES = (wasserstein,)
