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
    Mao et al. 2017, "Least Squares Generative Adversarial Networks" (a=0, b=1, c=1).
    Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018 (the hinge loss).
    Berthelot, Schumm, Metz 2017, "BEGAN: Boundary Equilibrium GANs".
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
    # Score above which the critic calls a sample real (D's accuracy, which the doctor reads);
    # None for games whose scores have no fixed decision point (Wasserstein, BEGAN).
    decision_threshold: float | None = None
    # "score": the critic maps x to one number; "autoencoder": the critic is BEGAN's
    # autoencoder and its score is the per-sample reconstruction error.
    critic_kind: str = "score"
    # A game with state of its own (BEGAN's k_t), updated after each critic step.
    equilibrium: "BoundaryEquilibrium | None" = None
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


def classifier_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of softplus(-s) and of softplus(s), per sample."""
    return -torch.sigmoid(-real_scores), torch.sigmoid(fake_scores)


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


def wasserstein_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of -s and of s, per sample."""
    return torch.full_like(real_scores, -1.0), torch.ones_like(fake_scores)


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """G minimises -E f(G(z))."""
    return -fake_scores.mean()


def least_squares_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """LSGAN with targets b = 1 (real), a = 0 (fake): 1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2."""
    real = 0.5 * (real_scores - 1).pow(2).mean()
    fake = 0.5 * fake_scores.pow(2).mean()
    return CriticLoss(real + fake, real, fake)


def least_squares_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of (s - 1)^2 / 2 and of s^2 / 2, per sample."""
    return real_scores - 1, fake_scores.clone()


def least_squares_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN with target c = 1: G minimises 1/2 E (D(G(z)) - 1)^2."""
    return 0.5 * (fake_scores - 1).pow(2).mean()


def hinge_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """E max(0, 1 - D(x)) + E max(0, 1 + D(G(z))): no reward for scores beyond the margin."""
    real = torch.relu(1 - real_scores).mean()
    fake = torch.relu(1 + fake_scores).mean()
    return CriticLoss(real + fake, real, fake)


def hinge_critic_sample_grads(real_scores: torch.Tensor, fake_scores: torch.Tensor):
    """d/ds of max(0, 1 - s) and of max(0, 1 + s), per sample (0 at the kinks, as torch's relu)."""
    return -(real_scores < 1).to(real_scores.dtype), (fake_scores > -1).to(fake_scores.dtype)


def began_critic_loss(real_errors: torch.Tensor, fake_errors: torch.Tensor, k: torch.Tensor | float) -> CriticLoss:
    """BEGAN's autoencoder loss L(x) - k_t L(G(z)), errors being per-sample reconstruction losses."""
    real = real_errors.mean()
    fake = -k * fake_errors.mean()
    return CriticLoss(real + fake, real, fake)


def began_generator_loss(fake_errors: torch.Tensor) -> torch.Tensor:
    """G minimises L(G(z)): its samples should be reconstructed as well as real data."""
    return fake_errors.mean()


def began_k_update(k: torch.Tensor, real_error: torch.Tensor, fake_error: torch.Tensor, gamma: float,
                   lambda_k: float) -> torch.Tensor:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1), the proportional control
    that holds E L(G(z)) = gamma E L(x)."""
    return (k + lambda_k * (gamma * real_error - fake_error)).clamp(0.0, 1.0)


def began_convergence(real_error: torch.Tensor, fake_error: torch.Tensor, gamma: float) -> torch.Tensor:
    """BEGAN's global convergence measure M = L(x) + |gamma L(x) - L(G(z))| (lower is better)."""
    return real_error + (gamma * real_error - fake_error).abs()


class BoundaryEquilibrium:
    """BEGAN's equilibrium state: k_t, updated from the last critic step's mean errors.

    Args:
        gamma: the diversity ratio E L(G(z)) / E L(x) the control holds.
        lambda_k: the proportional gain of the k_t update.
    """

    def __init__(self, gamma: float = 0.5, lambda_k: float = 0.001):
        if not 0 < gamma <= 1 or lambda_k < 0:
            raise ValueError(f"BEGAN needs 0 < gamma <= 1 and lambda_k >= 0, got gamma={gamma}, lambda_k={lambda_k}")
        self.gamma, self.lambda_k = gamma, lambda_k
        self.k = torch.zeros(())  # k_0 = 0, as in the paper
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def critic_loss(self, real_errors: torch.Tensor, fake_errors: torch.Tensor) -> CriticLoss:
        self._last = (real_errors.detach().mean(), fake_errors.detach().mean())
        return began_critic_loss(real_errors, fake_errors, self.k.to(real_errors.device))

    def update(self) -> dict:
        if self._last is None:
            return {}
        real_error, fake_error = self._last
        self.k = began_k_update(self.k.to(real_error.device), real_error, fake_error, self.gamma, self.lambda_k)
        return {"began_k": self.k, "began_convergence": began_convergence(real_error, fake_error, self.gamma)}

    def state_dict(self) -> dict:
        return {"k": self.k}

    def load_state_dict(self, state: dict) -> None:
        self.k = state["k"]


def began(gamma: float = 0.5, lambda_k: float = 0.001) -> Objective:
    """A BEGAN game with its own k_t (one per run: the objective holds state)."""
    equilibrium = BoundaryEquilibrium(gamma, lambda_k)
    return Objective("began", equilibrium.critic_loss, began_generator_loss, critic_kind="autoencoder",
                     equilibrium=equilibrium)


minimax = Objective("minimax", classifier_critic_loss, minimax_generator_loss, decision_threshold=0.0,
                    critic_sample_grads=classifier_critic_sample_grads)
non_saturating = Objective("non-saturating", classifier_critic_loss, non_saturating_generator_loss,
                           decision_threshold=0.0, critic_sample_grads=classifier_critic_sample_grads)
wasserstein = Objective("wasserstein", wasserstein_critic_loss, wasserstein_generator_loss,
                        critic_sample_grads=wasserstein_critic_sample_grads)
lsgan = Objective("lsgan", least_squares_critic_loss, least_squares_generator_loss, decision_threshold=0.5,
                  critic_sample_grads=least_squares_critic_sample_grads)
# The generator side of the hinge game is the Wasserstein one, -E D(G(z)) (Miyato et al. 2018).
hinge = Objective("hinge", hinge_critic_loss, wasserstein_generator_loss, decision_threshold=0.0,
                  critic_sample_grads=hinge_critic_sample_grads)

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (minimax, non_saturating, wasserstein, lsgan, hinge, began())}


def get_objective(name: str, *, began_gamma: float = 0.5, began_lambda_k: float = 0.001) -> Objective:
    """The named objective; stateful games (BEGAN) are built fresh for each call."""
    if name == "began":
        return began(began_gamma, began_lambda_k)
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}") from None
