"""The base of every GAN objective: the :class:`Objective` record and its parameters.

Every objective maps raw critic scores (logits for the classifier games, real values for
the Wasserstein game) to losses to be *minimised*: ``critic(real, fake)`` gives the critic
loss with its real and fake parts, ``generator(fake, real)`` the generator loss (``real``
is None unless the game declares ``generator_needs_real``). The trainer never asks which
objective it holds; it reads these declarations.

Classifier games read the score s as D(x) = sigmoid(s) and use softplus forms, which
stay finite where log(sigmoid(s)) would underflow:

    -log sigmoid(s)     = softplus(-s)
    -log(1 - sigmoid(s)) = softplus(s)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

from wganlab.core.params import Param, check_params  # noqa: F401  (re-exported)


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
    """A GAN game: two pure loss functions sharing a name, and what the game declares of itself.

    Attributes:
        name: registry name, as written in configs.
        critic_fn: (real_scores, fake_scores) -> CriticLoss, scores of shape (B,) or (B, 1).
        generator_fn: (fake_scores, real_scores) -> scalar generator loss; real_scores is
            None unless ``generator_needs_real``.
        description: one line for ``--help`` and the docs.
        wasserstein: the critic's E f(x) - E f(G(z)) estimates W1 (the doctor's probe and
            oscillation reading need that).
        generator_needs_real: the generator loss reads the real scores (the relativistic
            games); the generator phase then scores a real batch too.
        params: the config keys the game reads (BEGAN's gamma and lambda_k); ``build``
            makes the game from them.
        build: (**params) -> Objective, for games with parameters or state of their own;
            None: this entry is the game.
    """

    name: str
    critic_fn: Callable[[torch.Tensor, torch.Tensor], CriticLoss]
    generator_fn: Callable[..., torch.Tensor]
    description: str = ""
    wasserstein: bool = False
    generator_needs_real: bool = False
    params: tuple[Param, ...] = ()
    build: Callable[..., "Objective"] | None = None
    # Score above which the critic calls a sample real (D's accuracy, which the doctor reads);
    # None for games whose scores have no fixed decision point (Wasserstein, BEGAN).
    decision_threshold: float | None = None
    # "score": the critic maps x to one number; "autoencoder": the critic is BEGAN's
    # autoencoder and its score is the per-sample reconstruction error.
    critic_kind: str = "score"
    # A game with state of its own (BEGAN's k_t), updated after each critic step.
    equilibrium: Any = None
    # For critic losses of the form mean_i l_real(s_i) + mean_j l_fake(s_j): (real_scores,
    # fake_scores) -> (l_real'(s), l_fake'(s)) elementwise, so that the hand-written critic step
    # (wganlab.core.critic_gradients) needs no autograd for dLoss/dscore (the loss's gradient is
    # these over the batch size). None: autograd.
    critic_sample_grads: Callable | None = None

    def after_critic_step(self) -> dict:
        """Updates the game's own state, if any, and returns its statistics (tensors)."""
        return self.equilibrium.update() if self.equilibrium is not None else {}

    def critic(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
        _check_scores(real_scores, "real")
        _check_scores(fake_scores, "fake")
        return self.critic_fn(real_scores, fake_scores)

    def generator(self, fake_scores: torch.Tensor, real_scores: torch.Tensor | None = None) -> torch.Tensor:
        _check_scores(fake_scores, "fake")
        if self.generator_needs_real:
            if real_scores is None:
                raise ValueError(f"the {self.name} generator loss needs the critic's scores of real samples")
            _check_scores(real_scores, "real")
        return self.generator_fn(fake_scores, real_scores)

    def __call__(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> ObjectiveLosses:
        critic = self.critic(real_scores, fake_scores)
        return ObjectiveLosses(critic.total, critic.real, critic.fake, self.generator(fake_scores, real_scores))
