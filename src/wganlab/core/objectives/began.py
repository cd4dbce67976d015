"""BEGAN (Berthelot, Schumm, Metz 2017): an autoencoder critic whose score is the per-sample
reconstruction error, and the proportional control k_t that holds E L(G(z)) = gamma E L(x)."""

from __future__ import annotations

import torch

from wganlab.core.objectives.base import CriticLoss, Objective, Param


def began_critic_loss(real_errors: torch.Tensor, fake_errors: torch.Tensor, k: torch.Tensor | float) -> CriticLoss:
    """BEGAN's autoencoder loss L(x) - k_t L(G(z)), errors being per-sample reconstruction losses."""
    real = real_errors.mean()
    fake = -k * fake_errors.mean()
    return CriticLoss(real + fake, real, fake)


def began_generator_loss(fake_errors: torch.Tensor, real_errors: torch.Tensor | None = None) -> torch.Tensor:
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


PARAMS = (Param("began_gamma", lambda v: 0 < v <= 1, "must be in (0, 1]"),
          Param("began_lambda_k", lambda v: v >= 0, "must be >= 0"))


def began(gamma: float = 0.5, lambda_k: float = 0.001) -> Objective:
    """A BEGAN game with its own k_t (one per run: the objective holds state)."""
    equilibrium = BoundaryEquilibrium(gamma, lambda_k)
    return Objective("began", equilibrium.critic_loss, began_generator_loss, description=DESCRIPTION,
                     params=PARAMS, build=_build, critic_kind="autoencoder", equilibrium=equilibrium)


def _build(began_gamma: float = 0.5, began_lambda_k: float = 0.001) -> Objective:
    return began(began_gamma, began_lambda_k)


DESCRIPTION = "BEGAN, an autoencoder critic and the k_t equilibrium control"
OBJECTIVES = (began(),)  # the registry's entry; every run builds its own (the game holds k_t)
