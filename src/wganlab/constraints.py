"""Lipschitz constraints for the critic, composable with any objective.

A constraint acts at one or both of two points of a critic step, and the trainer calls
both for every constraint without asking which it holds:

* ``penalty(critic, real, fake, generator)`` -> (scalar added to the critic loss, stats);
* ``project(critic)`` -> stats, a projection applied *after* the optimiser step.

References:
    Arjovsky, Chintala, Bottou 2017, "Wasserstein GAN" (weight clipping).
    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs" (gradient penalty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

# Inside the square root so that the norm's gradient stays finite at a zero gradient.
_NORM_EPS = 1e-12


def _interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    # One weight per sample, broadcast over every non-batch dimension (B, 1, 1, ...).
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, dtype=real.dtype).to(real.device)
    return (eps * real + (1 - eps) * fake).detach().requires_grad_(True)


def critic_input_gradient_norms(critic: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                                create_graph: bool = True) -> torch.Tensor:
    """||grad_x f(x)||_2 for each sample, the norm over all non-batch dimensions.

    Args:
        critic: maps (B, ...) to (B,) or (B, 1) scores.
        points: (B, ...) inputs with requires_grad set.
    Returns:
        (B,) gradient norms.
    """
    scores = critic(points)
    (grad,) = torch.autograd.grad(scores.sum(), points, create_graph=create_graph)
    return torch.sqrt(grad.flatten(start_dim=1).pow(2).sum(dim=1) + _NORM_EPS)


def gradient_penalty_and_norms(critic, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0,
                               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-sided WGAN-GP penalty and the interpolates' gradient norms.

    penalty = weight * E_xhat (||grad f(xhat)||_2 - 1)^2, xhat = eps real + (1 - eps) fake,
    eps ~ U[0, 1] drawn per sample.

    Returns:
        (scalar penalty, (B,) gradient norms at the interpolates).
    """
    if weight < 0:
        raise ValueError(f"gradient penalty weight must be >= 0, got {weight}")
    norms = critic_input_gradient_norms(critic, _interpolate(real, fake.detach(), generator))
    return weight * (norms - 1).pow(2).mean(), norms


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Scalar WGAN-GP penalty; see :func:`gradient_penalty_and_norms`.

    Example:
        >>> critic = torch.nn.Linear(2, 1, bias=False)
        >>> _ = critic.weight.data.copy_(torch.tensor([[2.0, 0.0]]))
        >>> float(gradient_penalty(critic, torch.randn(8, 2), torch.randn(8, 2), weight=10.0))
        10.0
    """
    return gradient_penalty_and_norms(critic, real, fake, weight, generator)[0]


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> torch.Tensor:
    """Projects every parameter of ``module`` onto [-c, c]; call it after the optimiser step.

    Returns:
        0-d tensor: the fraction of parameters at +-c afterwards, how much capacity the
        clipping pins (a tensor, so that the training loop need not wait for it).
    """
    if c <= 0:
        raise ValueError(f"clipping bound c must be > 0, got {c}")
    params = list(module.parameters())
    if not params:
        raise ValueError("clip_weights: the module has no parameters")
    pinned = params[0].new_zeros(())
    total = 0
    for p in params:
        p.clamp_(-c, c)
        pinned = pinned + (p.abs() >= c).sum()
        total += p.numel()
    return pinned / total


@dataclass(frozen=True)
class Constraint:
    """A Lipschitz constraint as the trainer sees it.

    Attributes:
        name: registry name.
        penalty: (critic, real, fake, generator) -> (scalar tensor, stats dict of tensors).
        project: critic -> stats dict, run after each critic optimiser step.
    """

    name: str
    penalty: Callable
    project: Callable


def _no_penalty(critic, real, fake, generator=None):
    return real.new_zeros(()), {}


def _no_projection(critic):
    return {}


def no_constraint() -> Constraint:
    return Constraint("none", _no_penalty, _no_projection)


def gradient_penalty_constraint(weight: float = 10.0) -> Constraint:
    if weight < 0:
        raise ValueError(f"gradient penalty weight must be >= 0, got {weight}")

    def penalty(critic, real, fake, generator=None):
        value, norms = gradient_penalty_and_norms(critic, real, fake, weight, generator)
        return value, {"penalty": value.detach(), "gp_grad_norm": norms.detach().mean()}

    return Constraint("gradient-penalty", penalty, _no_projection)


def clip_constraint(c: float = 0.01) -> Constraint:
    if c <= 0:
        raise ValueError(f"clipping bound c must be > 0, got {c}")

    def project(critic):
        return {"clipped_fraction": clip_weights(critic, c)}

    return Constraint("clip", _no_penalty, project)


CONSTRAINTS = ("none", "gradient-penalty", "clip")
# constraints that add no penalty term to the critic loss (no double backward)
PROJECTION_ONLY = ("none", "clip")


def make_constraint(name: str, *, gp_weight: float = 10.0, clip: float = 0.01) -> Constraint:
    if name == "none":
        return no_constraint()
    if name == "gradient-penalty":
        return gradient_penalty_constraint(gp_weight)
    if name == "clip":
        return clip_constraint(clip)
    raise ValueError(f"unknown constraint {name!r}; choose one of: {', '.join(CONSTRAINTS)}")
