"""GAN objectives as pure functions of critic outputs.

Every objective maps raw critic scores (logits for the classifier games, real values for
the Wasserstein game) to an :class:`ObjectiveLosses`: the critic loss, its real and fake
parts, and the generator loss, all scalars to be *minimised*. The trainer calls
``objective.critic(real, fake)`` in the critic phase and ``objective.generator(fake)`` in
the generator phase; it never asks which objective it holds.

Classifier games read the score s as D(x) = sigmoid(s) and use softplus forms, which
stay finite where log(sigmoid(s)) would underflow:

    -log sigmoid(s)     = softplus(-s)
    -log(1 - sigmoid(s)) = softplus(s)

References:
    Goodfellow et al. 2014, "Generative Adversarial Nets" (minimax and non-saturating).
    Arjovsky, Chintala, Bottou 2017, "Wasserstein GAN".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch.nn.functional import softplus


class CriticLoss(NamedTuple):
    total: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor


class ObjectiveLosses(NamedTuple):
    critic: torch.Tensor
    critic_real: torch.Tensor
    critic_fake: torch.Tensor
    generator: torch.Tensor


def _check_scores(scores: torch.Tensor, role: str) -> None:
    if scores.dim() not in (1, 2) or (scores.dim() == 2 and scores.shape[1] != 1):
        raise ValueError(f"{role} critic scores must have shape (B,) or (B, 1), got {tuple(scores.shape)}")


@dataclass(frozen=True)
class Objective:
    """A GAN game: two pure loss functions sharing a name.

    Attributes:
        name: registry name, as written in configs.
        critic_fn: (real_scores, fake_scores) -> CriticLoss, scores of shape (B,) or (B, 1).
        generator_fn: fake_scores -> scalar generator loss.
    """

    name: str
    critic_fn: Callable[[torch.Tensor, torch.Tensor], CriticLoss]
    generator_fn: Callable[[torch.Tensor], torch.Tensor]

    def critic(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
        _check_scores(real_scores, "real")
        _check_scores(fake_scores, "fake")
        return self.critic_fn(real_scores, fake_scores)

    def generator(self, fake_scores: torch.Tensor) -> torch.Tensor:
        _check_scores(fake_scores, "fake")
        return self.generator_fn(fake_scores)

    def __call__(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> ObjectiveLosses:
        critic = self.critic(real_scores, fake_scores)
        return ObjectiveLosses(critic.total, critic.real, critic.fake, self.generator(fake_scores))


def classifier_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """Binary cross-entropy of D: -E log D(x) - E log(1 - D(G(z)))."""
    real = softplus(-real_scores).mean()  # -log sigmoid(s)
    fake = softplus(fake_scores).mean()  # -log(1 - sigmoid(s))
    return CriticLoss(real + fake, real, fake)


def minimax_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The original saturating cost: G minimises E log(1 - D(G(z))) = -E softplus(s).

    Its gradient with respect to s is -sigmoid(s), which vanishes as D(G(z)) -> 0: exactly
    when the discriminator wins, the generator stops learning.
    """
    return -softplus(fake_scores).mean()


def non_saturating_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The -log D trick: G minimises -E log D(G(z)) = E softplus(-s)."""
    return softplus(-fake_scores).mean()


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """The critic maximises E f(x) - E f(G(z)), i.e. minimises its negative."""
    real = -real_scores.mean()
    fake = fake_scores.mean()
    return CriticLoss(real + fake, real, fake)


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """G minimises -E f(G(z))."""
    return -fake_scores.mean()


minimax = Objective("minimax", classifier_critic_loss, minimax_generator_loss)
non_saturating = Objective("non-saturating", classifier_critic_loss, non_saturating_generator_loss)
wasserstein = Objective("wasserstein", wasserstein_critic_loss, wasserstein_generator_loss)

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (minimax, non_saturating, wasserstein)}


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}") from None
