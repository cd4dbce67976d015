"""Lipschitz constraints for the critic, composable with any objective.

A constraint acts at one or both of two points of a critic step, and the trainer calls
both for every constraint without asking which it holds:

* ``penalty(critic, real, fake, generator)`` -> (scalar added to the critic loss, stats);
* ``project(critic)`` -> stats, a projection applied *after* the optimiser step.

and, once when the critic is built, ``prepare(critic)`` -> the critic to train (spectral
normalisation re-parametrises its weights there).

References:
    Arjovsky, Chintala, Bottou 2017, "Wasserstein GAN" (weight clipping).
    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs" (gradient penalty).
    Petzka, Fischer, Lukovnikov 2018, "On the regularization of Wasserstein GANs" (WGAN-LP).
    Mescheder, Geiger, Nowozin 2018, "Which Training Methods for GANs do actually Converge?" (R1, R2).
    Kodali et al. 2017, "On Convergence and Stability of GANs" (DRAGAN).
    Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from wganlab.core.params import Param, check_params

# Inside the square root so that the norm's gradient stays finite at a zero gradient.
_NORM_EPS = 1e-12


def interpolation_weights(real: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """eps ~ U[0, 1], one per sample, shaped (B, 1, 1, ...) to broadcast over ``real``."""
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    return torch.rand(eps_shape, generator=generator, dtype=real.dtype).to(real.device)


def _interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    eps = interpolation_weights(real, generator)
    return (eps * real + (1 - eps) * fake).detach().requires_grad_(True)


def two_sided_penalty(norms: torch.Tensor, weight) -> torch.Tensor:
    """WGAN-GP's weight * mean (||g|| - 1)^2 over the last dimension of ``norms``.

    ``weight`` is a float, or (K,) per-run weights for (K, B) norms of K runs.
    """
    return weight * (norms - 1).pow(2).mean(dim=-1)


def one_sided_penalty(norms: torch.Tensor, weight) -> torch.Tensor:
    """WGAN-LP's weight * mean max(0, ||g|| - 1)^2 over the last dimension of ``norms``."""
    return weight * torch.relu(norms - 1).pow(2).mean(dim=-1)


def _per_run(weight, norms: torch.Tensor):
    # a (K,) tensor of per-run weights broadcasts over (K, B) norms along the batch
    return weight.unsqueeze(-1) if isinstance(weight, torch.Tensor) and weight.dim() else weight


def two_sided_penalty_grad(norms: torch.Tensor, weight) -> torch.Tensor:
    """d two_sided_penalty / d norms: weight * 2 (||g|| - 1) / B."""
    return _per_run(weight, norms) * (2.0 / norms.shape[-1]) * (norms - 1)


def one_sided_penalty_grad(norms: torch.Tensor, weight) -> torch.Tensor:
    """d one_sided_penalty / d norms: weight * 2 max(0, ||g|| - 1) / B."""
    return _per_run(weight, norms) * (2.0 / norms.shape[-1]) * torch.relu(norms - 1)


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
    return gradient_norms(grad)


def gradient_norms(grad: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
    """The L2 norm of each sample's input gradient: (B, ...) -> (B,), or (K, B, ...) -> (K, B)
    with ``batch_dims = 2`` (K stacked runs)."""
    return torch.sqrt(grad.flatten(start_dim=batch_dims).pow(2).sum(dim=-1) + _NORM_EPS)


def _at_interpolates(critic, real, fake, weight, generator, penalty_of, what: str):
    """``penalty_of`` the critic's input-gradient norms at the WGAN-GP interpolates, and the norms."""
    if weight < 0:
        raise ValueError(f"{what} must be >= 0, got {weight}")
    norms = critic_input_gradient_norms(critic, _interpolate(real, fake.detach(), generator))
    return penalty_of(norms, weight), norms


def gradient_penalty_and_norms(critic, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0,
                               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-sided WGAN-GP penalty and the interpolates' gradient norms.

    penalty = weight * E_xhat (||grad f(xhat)||_2 - 1)^2, xhat = eps real + (1 - eps) fake,
    eps ~ U[0, 1] drawn per sample.

    Returns:
        (scalar penalty, (B,) gradient norms at the interpolates).
    """
    return _at_interpolates(critic, real, fake, weight, generator, two_sided_penalty, "gradient penalty weight")


def one_sided_penalty_and_norms(critic, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0,
                                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-LP: weight * E_xhat max(0, ||grad f(xhat)|| - 1)^2 at the WGAN-GP interpolates.

    Only norms above 1 are penalised: a 1-Lipschitz critic may be flatter than 1 anywhere.

    Returns:
        (scalar penalty, (B,) gradient norms at the interpolates).
    """
    return _at_interpolates(critic, real, fake, weight, generator, one_sided_penalty, "penalty weight")


def zero_centred_penalty_and_norms(critic, points: torch.Tensor, gamma: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """R1 (points = real data) or R2 (points = generated data): gamma / 2 * E ||grad f(x)||^2.

    Returns:
        (scalar penalty, (B,) gradient norms at ``points``).
    """
    if gamma < 0:
        raise ValueError(f"penalty weight gamma must be >= 0, got {gamma}")
    norms = critic_input_gradient_norms(critic, points.detach().requires_grad_(True))
    return 0.5 * gamma * norms.pow(2).mean(), norms


DRAGAN_PERTURBATION = 0.5  # C in x + C std(x) U[0, 1], the value of the DRAGAN authors' code


def dragan_penalty_and_norms(critic, real: torch.Tensor, weight: float = 10.0,
                             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DRAGAN: weight * E (||grad f(xhat)|| - 1)^2 at points near the real data.

    x_p = x + C std(x) u with u ~ U[0, 1]^shape, xhat = x + alpha (x_p - x) with alpha ~ U[0, 1]
    per sample, C = 0.5 (Kodali et al.): the critic is kept smooth around the data.

    Returns:
        (scalar penalty, (B,) gradient norms at the perturbed points).
    """
    if weight < 0:
        raise ValueError(f"penalty weight must be >= 0, got {weight}")
    noise = torch.rand(real.shape, generator=generator, dtype=real.dtype).to(real.device)
    perturbed = real + DRAGAN_PERTURBATION * real.std() * noise
    norms = critic_input_gradient_norms(critic, _interpolate(real, perturbed, generator))
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


@torch.no_grad()
def clip_stacked_parameters(params, bounds: torch.Tensor) -> torch.Tensor:
    """Weight clipping of K stacked critics: each tensor's leading dimension is the run, and run
    k's entries are projected onto [-bounds[k], bounds[k]] in place (after the optimiser step).

    Returns:
        (K,) fraction of each run's parameters at its bound afterwards.
    """
    pinned, total = 0, 0
    for p in params:
        bound = bounds.view((-1,) + (1,) * (p.dim() - 1))
        p.copy_(torch.maximum(torch.minimum(p, bound), -bound))
        pinned = pinned + (p.abs() >= bound).flatten(start_dim=1).sum(dim=1)
        total += p[0].numel()
    return pinned / total


@dataclass(frozen=True)
class Constraint:
    """A Lipschitz constraint as the trainer sees it.

    Attributes:
        name: registry name.
        penalty: (critic, real, fake, generator) -> (scalar tensor, stats dict of tensors).
        project: critic -> stats dict, run after each critic optimiser step.
        penalty_of_norms: for penalties at the WGAN-GP interpolates, the same penalty as a
            function of the (B,) input-gradient norms there -> (scalar, stats); it lets the
            trainer compute the penalty's gradient by hand (``wganlab.core.critic_gradients``).
        penalty_norm_grads: (B,) norms -> d penalty / d norms, that penalty's derivative in
            closed form (the hand-written step then needs no autograd for it).
    """

    name: str
    penalty: Callable
    project: Callable
    prepare: Callable = lambda critic: critic
    penalty_of_norms: Callable | None = None
    penalty_norm_grads: Callable | None = None


def _norm_stats(value: torch.Tensor, norms: torch.Tensor) -> dict:
    # The doctor reads the share of points whose gradient norm is far above the target 1.
    norms = norms.detach()
    return {"penalty": value.detach(), "gp_grad_norm": norms.mean(), "gp_over_1_5": (norms > 1.5).float().mean()}


def _no_penalty(critic, real, fake, generator=None):
    return real.new_zeros(()), {}


def _no_projection(critic):
    return {}


def no_constraint() -> Constraint:
    return Constraint("none", _no_penalty, _no_projection)


def _penalty_at_interpolates(name: str, penalty_and_norms, penalty_of, penalty_grad, weight: float) -> Constraint:
    """A penalty at the WGAN-GP interpolates, both as the critic-level function the autograd
    path calls and as a function of the norms there (``penalty_of_norms``)."""
    def penalty(critic, real, fake, generator=None):
        value, norms = penalty_and_norms(critic, real, fake, weight, generator)
        return value, _norm_stats(value, norms)

    def of_norms(norms):
        value = penalty_of(norms, weight)
        return value, _norm_stats(value, norms)

    return Constraint(name, penalty, _no_projection, penalty_of_norms=of_norms,
                      penalty_norm_grads=lambda norms: penalty_grad(norms, weight))


def gradient_penalty_constraint(weight: float = 10.0) -> Constraint:
    if weight < 0:
        raise ValueError(f"gradient penalty weight must be >= 0, got {weight}")
    return _penalty_at_interpolates("gradient-penalty", gradient_penalty_and_norms, two_sided_penalty,
                                    two_sided_penalty_grad, weight)


def one_sided_penalty_constraint(weight: float = 10.0) -> Constraint:
    return _penalty_at_interpolates("lipschitz-penalty", one_sided_penalty_and_norms, one_sided_penalty,
                                    one_sided_penalty_grad, weight)


def r1_constraint(gamma: float = 10.0, on_fake: bool = False) -> Constraint:
    def penalty(critic, real, fake, generator=None):
        value, norms = zero_centred_penalty_and_norms(critic, fake if on_fake else real, gamma)
        return value, {"penalty": value.detach(), "gp_grad_norm": norms.detach().mean()}

    return Constraint("r2" if on_fake else "r1", penalty, _no_projection)


def dragan_constraint(weight: float = 10.0) -> Constraint:
    def penalty(critic, real, fake, generator=None):
        value, norms = dragan_penalty_and_norms(critic, real, weight, generator)
        return value, _norm_stats(value, norms)

    return Constraint("dragan", penalty, _no_projection)


def spectral_normalize(critic: nn.Module) -> nn.Module:
    """Re-parametrises every Linear / Conv weight of ``critic`` as W / sigma(W), in place.

    sigma is estimated by one power iteration per training forward (torch's
    ``parametrizations.spectral_norm``), so each layer is 1-Lipschitz and, with 1-Lipschitz
    activations, so is the critic.
    """
    from torch.nn.utils.parametrizations import spectral_norm

    layers = [m for m in critic.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    if not layers:
        raise ValueError("spectral normalisation found no Linear or Conv layer in the critic")
    for layer in layers:
        spectral_norm(layer)
    return critic


def spectral_norm_constraint() -> Constraint:
    return Constraint("spectral-norm", _no_penalty, _no_projection, spectral_normalize)


def clip_constraint(c: float = 0.01) -> Constraint:
    if c <= 0:
        raise ValueError(f"clipping bound c must be > 0, got {c}")

    def project(critic):
        return {"clipped_fraction": clip_weights(critic, c)}

    return Constraint("clip", _no_penalty, project)


@dataclass(frozen=True)
class ConstraintEntry:
    """A registry entry: how to build a constraint and what it declares of itself.

    Attributes:
        build: (**params) -> Constraint.
        params: the config keys it reads (``gp_weight`` is the weight of whichever penalty it is).
        penalises_input_gradients: a per-sample penalty on ||grad_x f||; a critic whose output
            for one sample depends on the batch (BatchNorm) makes it meaningless.
        unit_norm_target: the penalty pulls ||grad_x f|| towards 1 (the doctor then reads the
            share of points far above 1 as a Lipschitz violation).
        adds_penalty: False for projections and re-parametrisations (no double backward).
    """

    name: str
    build: Callable[..., Constraint]
    description: str
    params: tuple[Param, ...] = ()
    penalises_input_gradients: bool = False
    unit_norm_target: bool = False
    adds_penalty: bool = True


_WEIGHT = Param("gp_weight", lambda v: v >= 0, "must be >= 0 (0 disables the penalty)")
_CLIP = Param("clip", lambda v: v > 0, "must be > 0")

# name -> entry; adding a constraint is its functions above plus one line here
CONSTRAINTS: dict[str, ConstraintEntry] = {e.name: e for e in (
    ConstraintEntry("none", lambda: no_constraint(), "no Lipschitz constraint", adds_penalty=False),
    ConstraintEntry("gradient-penalty", lambda gp_weight=10.0: gradient_penalty_constraint(gp_weight),
                    "WGAN-GP: lambda (||grad f(x_hat)|| - 1)^2 at real-fake interpolates", (_WEIGHT,),
                    penalises_input_gradients=True, unit_norm_target=True),
    ConstraintEntry("clip", lambda clip=0.01: clip_constraint(clip), "WGAN: clip every critic weight to [-c, c]",
                    (_CLIP,), adds_penalty=False),
    ConstraintEntry("lipschitz-penalty", lambda gp_weight=10.0: one_sided_penalty_constraint(gp_weight),
                    "WGAN-LP: lambda max(0, ||grad f(x_hat)|| - 1)^2", (_WEIGHT,),
                    penalises_input_gradients=True, unit_norm_target=True),
    ConstraintEntry("r1", lambda gp_weight=10.0: r1_constraint(gp_weight), "R1: gamma/2 ||grad f(x)||^2 on real data",
                    (_WEIGHT,), penalises_input_gradients=True),
    ConstraintEntry("r2", lambda gp_weight=10.0: r1_constraint(gp_weight, on_fake=True),
                    "R2: gamma/2 ||grad f(G(z))||^2 on fake data", (_WEIGHT,), penalises_input_gradients=True),
    ConstraintEntry("dragan", lambda gp_weight=10.0: dragan_constraint(gp_weight),
                    "DRAGAN: the unit-norm penalty at perturbed real points", (_WEIGHT,),
                    penalises_input_gradients=True, unit_norm_target=True),
    ConstraintEntry("spectral-norm", lambda: spectral_norm_constraint(),
                    "SN-GAN: every critic weight divided by its spectral norm", adds_penalty=False),
)}
# derived from the declarations, for readers of the flat layout's names
INPUT_GRADIENT_PENALTIES = tuple(n for n, e in CONSTRAINTS.items() if e.penalises_input_gradients)
PROJECTION_ONLY = tuple(n for n, e in CONSTRAINTS.items() if not e.adds_penalty)


def make_constraint(name: str, **values) -> Constraint:
    """The named constraint, built from the config ``values`` its ``params`` name (others are ignored)."""
    if name not in CONSTRAINTS:
        raise ValueError(f"unknown constraint {name!r}; choose one of: {', '.join(CONSTRAINTS)}")
    entry = CONSTRAINTS[name]
    given = {p.key: values[p.key] for p in entry.params if p.key in values}
    check_params(entry.params, given)
    return entry.build(**given)
