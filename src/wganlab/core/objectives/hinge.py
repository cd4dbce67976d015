"""The hinge game (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018)."""

from __future__ import annotations

import torch

from wganlab.core.objectives.base import CriticLoss, Objective
from wganlab.core.objectives.wasserstein import wasserstein_generator_loss


def hinge_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """E max(0, 1 - D(x)) + E max(0, 1 + D(G(z))): no reward for scores beyond the margin."""
    real = torch.relu(1 - real_scores).mean()
    fake = torch.relu(1 + fake_scores).mean()
    return CriticLoss(real + fake, real, fake)


def hinge_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of max(0, 1 - s) and of max(0, 1 + s), per sample (0 at the kinks, as torch's relu)."""
    return -(real_scores < 1).to(real_scores.dtype), (fake_scores > -1).to(fake_scores.dtype)


# The generator side of the hinge game is the Wasserstein one, -E D(G(z)) (Miyato et al. 2018).
hinge = Objective("hinge", hinge_critic_loss, wasserstein_generator_loss,
                  description="hinge loss for the critic, -E D(G(z)) for the generator", decision_threshold=0.0,
                  critic_sample_grads=hinge_critic_sample_grads)
OBJECTIVES = (hinge,)
