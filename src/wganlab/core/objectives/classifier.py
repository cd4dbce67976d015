"""The classifier games of Goodfellow et al. 2014: minimax (saturating) and non-saturating.

D(x) = sigmoid(s); the critic minimises the binary cross-entropy -E log D(x) - E log(1 - D(G(z))).
"""

from __future__ import annotations

import torch
from torch.nn.functional import softplus

from wganlab.core.objectives.base import CriticLoss, Objective


def classifier_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """Binary cross-entropy of D: -E log D(x) - E log(1 - D(G(z)))."""
    real = softplus(-real_scores).mean()  # -log sigmoid(s)
    fake = softplus(fake_scores).mean()  # -log(1 - sigmoid(s))
    return CriticLoss(real + fake, real, fake)


def classifier_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of softplus(-s) and of softplus(s), per sample."""
    return -torch.sigmoid(-real_scores), torch.sigmoid(fake_scores)


def minimax_generator_loss(fake_scores: torch.Tensor, real_scores: torch.Tensor | None = None) -> torch.Tensor:
    """The original saturating cost: G minimises E log(1 - D(G(z))) = -E softplus(s).

    Its gradient with respect to s is -sigmoid(s), which vanishes as D(G(z)) -> 0: exactly
    when the discriminator wins, the generator stops learning.
    """
    return -softplus(fake_scores).mean()


def non_saturating_generator_loss(fake_scores: torch.Tensor, real_scores: torch.Tensor | None = None) -> torch.Tensor:
    """The -log D trick: G minimises -E log D(G(z)) = E softplus(-s)."""
    return softplus(-fake_scores).mean()


minimax = Objective("minimax", classifier_critic_loss, minimax_generator_loss,
                    description="GAN, G minimises log(1 - D(G(z))) (saturating)", decision_threshold=0.0,
                    critic_sample_grads=classifier_critic_sample_grads)
non_saturating = Objective("non-saturating", classifier_critic_loss, non_saturating_generator_loss,
                           description="GAN, G minimises -log D(G(z))", decision_threshold=0.0,
                           critic_sample_grads=classifier_critic_sample_grads)
OBJECTIVES = (minimax, non_saturating)
