"""Critic-guided sampling after training: discriminator rejection sampling (DRS).

Azadi et al. 2019, "Discriminator Rejection Sampling": a discriminator D at its optimum gives
the density ratio p_data(x) / p_g(x) = exp(logit D(x)), so accepting a generated x with
probability exp(d(x) - d_max), d the logit and d_max its maximum, draws exactly from p_data
wherever p_g covers it (rejection sampling with the bound M = exp(d_max)). DRS estimates d_max
from a burn-in draw, keeps raising it as larger logits appear, and accepts with

    p(x) = sigmoid(F(x)),  F(x) = d(x) - d_max - log(1 - exp(d(x) - d_max - eps)) - gamma,

which is exp(d - d_max) to first order for gamma = 0 (the exact sampler, our default); a
gamma > 0 shifts it up to accept more (the paper's knob for sharp ratios).

The logit d comes from the run's critic made into a calibrated log ratio: a logistic
regression of "real" on the critic's score, d = a f(x) + b (Platt scaling, fitted on real and
generated samples). For the classifier games that recalibrates D's logit (the paper fine-tunes
D for the same reason: the run's D is not at its optimum for the final generator). For a
Wasserstein critic, whose score is not a log ratio but is larger where the data is denser than
the samples, it is rejection on the critic's score with the calibration setting the scale: the
Wasserstein analogue the issue names. A critic that cannot tell the samples from the data fits
a ~ 0, and every sample is accepted.

This refines samples; it never changes the generator. Its figures are reported as refined,
beside the plain generator's.
"""

from __future__ import annotations

from typing import Callable

import torch


def platt_scaling(real_scores: torch.Tensor, fake_scores: torch.Tensor, steps: int = 50) -> tuple[float, float]:
    """(a, b) of the logistic regression P(real | s) = sigmoid(a s + b), by maximum likelihood.

    Why by hand: two parameters; torch's L-BFGS fits them in a few milliseconds, where a
    library's logistic regression would add a dependency for one line.
    """
    scores = torch.cat([real_scores.reshape(-1), fake_scores.reshape(-1)]).double()
    labels = torch.cat([torch.ones(real_scores.numel()), torch.zeros(fake_scores.numel())]).double()
    scale = scores.std().clamp_min(1e-12)  # fit on standardised scores: well conditioned at any scale
    centre = scores.mean()
    x = (scores - centre) / scale
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * x + params[1], labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = (float(v) for v in params.detach())
    return a / float(scale), b - a * float(centre) / float(scale)


def acceptance_probability(logits: torch.Tensor, max_logit: float, gamma: float = 0.0,
                           eps: float = 1e-6) -> torch.Tensor:
    """DRS's p = sigmoid(F) (Azadi et al. 2019, eq. 8), in float64; logits above ``max_logit`` give ~1."""
    d = logits.double() - max_logit
    shift = torch.log1p(-torch.exp(torch.clamp(d, max=0.0) - eps))
    return torch.sigmoid(d - shift - gamma)


def rejection_sample(draw: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]], n: int, seed: int = 0,
                     burn_in: int = 10_000, batch: int = 10_000, gamma: float = 0.0,
                     max_draws: int | None = None) -> tuple[torch.Tensor, dict]:
    """``n`` samples kept by discriminator rejection sampling, and the sampler's statistics.

    Args:
        draw: (count, seed) -> (samples (count, ...), their logits d (count,)); each seed a new draw.
        burn_in: samples drawn first to estimate d_max (not themselves kept).
        max_draws: candidates drawn at most (default 100 n); fewer accepted is an error that
            says so, rather than a run that never ends.
    Returns:
        (samples (n, ...), {"acceptance": accepted / drawn, "drawn": candidates, "max_logit": d_max}).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    max_draws = max_draws or 100 * n
    _, burn_logits = draw(burn_in, seed)
    max_logit = float(burn_logits.max())
    uniform = torch.Generator().manual_seed(seed + 7_919)
    kept, kept_count, drawn, round_index = [], 0, 0, 0
    while kept_count < n:
        if drawn >= max_draws:
            raise RuntimeError(f"rejection sampling accepted {kept_count} of {drawn} candidates ({kept_count / drawn:.2%}); "
                               f"the critic's ratio is too sharp to reach {n}: raise gamma to accept more")
        round_index += 1
        samples, logits = draw(batch, seed + round_index)
        max_logit = max(max_logit, float(logits.max()))  # DRS keeps the bound current
        accept = torch.rand(len(logits), generator=uniform, dtype=torch.float64) < acceptance_probability(
            logits, max_logit, gamma)
        kept.append(samples[accept])
        kept_count += int(accept.sum())
        drawn += len(logits)
    return torch.cat(kept)[:n], {"acceptance": kept_count / drawn, "drawn": drawn, "max_logit": max_logit}
