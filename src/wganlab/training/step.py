"""THE composition of a training step: an objective's losses plus a constraint's penalty.

Every place that trains a critic or a generator composes its loss here and nowhere else:
the trainer's phases, the doctor's probe critic, the unrolled rule's differentiable critic
steps and the stacked sweep. The update rule (``wganlab.core.update_rules``) decides the
order of the phases; the optimisers belong to the caller.

    critic:     L_D = objective.critic(f(x), f(G(z))) + constraint.penalty(f, x, G(z))
                then the optimiser step, then constraint.project(f)
    generator:  L_G = objective.generator(f(G(z)), f(x) if the game reads real scores)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from wganlab.core.constraints import Constraint
from wganlab.core.critic_gradients import critic_step_gradients
from wganlab.core.objectives import CriticLoss, Objective
from wganlab.core.packing import pack_samples


class CriticTerms(NamedTuple):
    total: torch.Tensor  # the loss to differentiate: the objective's critic loss plus the penalty
    losses: CriticLoss  # the objective's part, with its real and fake halves
    penalty_stats: dict  # the constraint's statistics (tensors)
    scores: torch.Tensor  # (2B/pack, 1) scores of real then fake (packs under packing), in fp32


def critic_terms(objective: Objective, constraint: Constraint | None, score: Callable, real: torch.Tensor,
                 fake: torch.Tensor, rng: torch.Generator | None = None, penalty: Callable | None = None,
                 pack: int = 1) -> CriticTerms:
    """One critic step's loss.

    Args:
        score: the critic, a module or a functional call: (N, ...) -> (N, 1) scores.
        real, fake: (B, ...) batches; ``fake`` carries no graph to the generator here
            unless the caller wants one (the unrolled rule does).
        rng: the stream the constraint draws its interpolation weights from.
        penalty: (score, real, fake) -> (value, stats) in place of ``constraint.penalty``
            (the sweep's per-run penalty at interpolation weights drawn before).
        pack: PacGAN's m (``wganlab.core.packing``): real and fake are packed first, so the
            objective sees one score per pack and the penalty is taken at packed interpolates
            (one weight per packed sample); ``score`` must then take packed batches.
    """
    real, fake = pack_samples(real, pack), pack_samples(fake, pack)
    batch = real.shape[0]
    # One forward over real and fake: critics with no batch statistics give the same function
    # at one kernel launch per layer instead of two.
    scores = score(torch.cat([real, fake])).float()
    losses = objective.critic(scores[:batch], scores[batch:])
    if penalty is None:
        value, stats = constraint.penalty(score, real, fake, rng)
    else:
        value, stats = penalty(score, real, fake)
    return CriticTerms(losses.total + value, losses, stats, scores)


def critic_update(terms: CriticTerms, constraint: Constraint, critic: torch.nn.Module,
                  optimizer: torch.optim.Optimizer) -> dict:
    """Backward of ``terms.total``, the optimiser step, then the constraint's projection; its stats."""
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return constraint.project(critic)


def generator_loss(objective: Objective, score: Callable, fake: torch.Tensor,
                   real: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's loss on ``fake`` (graph to the generator kept); ``real`` is scored only
    when the game reads real scores (RaGAN), and is then required."""
    real_scores = None
    if objective.generator_needs_real:
        if real is None:
            raise ValueError(f"the {objective.name} generator loss needs a real batch")
        real_scores = score(real).float()
    return objective.generator(score(fake).float(), real_scores)


def hand_written_critic_gradients(objective: Objective, weights, biases, slopes, real, fake, eps,
                                  penalty_of_norms: Callable | None, penalty_norm_grads: Callable | None,
                                  compute_dtype=None, stacked: bool = True):
    """The critic step of K stacked plain MLP critics without autograd (``core.critic_gradients``):
    the same composition, the objective's loss summed over the K runs plus the penalty of the
    input-gradient norms at the interpolates ``real + eps (fake - real)`` weights.

    Args:
        weights, biases: per layer, (K, out, in) and (K, out) parameters.
        real, fake: (K, B, D); eps: (K, B, 1) interpolation weights, or None without a penalty.
        penalty_of_norms: (K, B) norms -> (scalar summed over runs, stats), or None.
        stacked: False for one run (K = 1), whose loss statistics are the objective's CriticLoss;
            True: per-run (K,) "d_loss", "d_real", "d_fake".
    """
    def critic_loss(real_scores, fake_scores):
        if not stacked:  # one run: the objective's CriticLoss is the statistics
            losses = objective.critic(real_scores[0], fake_scores[0])
            return losses.total, losses
        total, real_part, fake_part = _per_run_losses(objective)(real_scores, fake_scores)
        return total.sum(), {"d_loss": total, "d_real": real_part, "d_fake": fake_part}

    return critic_step_gradients(weights, biases, slopes, real, fake, eps, critic_loss, penalty_of_norms,
                                 loss_sample_grads=objective.critic_sample_grads, penalty_grad=penalty_norm_grads,
                                 compute_dtype=compute_dtype)


def _per_run_losses(objective: Objective):
    return torch.vmap(lambda r, f: tuple(objective.critic(r, f)))
