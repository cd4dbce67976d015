"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

from typing import Callable


def decay_start(steps: int, decay_fraction: float) -> int:
    """The step from which ``linear_decay(steps, decay_fraction)`` falls below 1."""
    return steps - round(steps * decay_fraction)


def linear_decay(steps: int, decay_fraction: float) -> Callable[[int], float]:
    """step -> factor: 1, then a linear decay to 0 over the final ``decay_fraction`` of ``steps``.

    The factor of step t multiplies the base learning rate of the update made after t steps
    (``torch.optim.lr_scheduler.LambdaLR`` calls it with t = 0, 1, ...).
    """
    start = decay_start(steps, decay_fraction)
    decay_steps = steps - start

    def factor(step: int) -> float:
        if decay_steps == 0 or step < start:
            return 1.0
        return max(0.0, (steps - step) / decay_steps)

    return factor


def budget_decay(steps: int, decay_fraction: float, max_seconds: float) -> Callable[[int, float], float]:
    """(step, elapsed seconds) -> factor: :func:`linear_decay` on the further ahead of two clocks.

    The step count, or the share of the time budget spent, taken as that share of ``steps``:
    a run that ``max_seconds`` cuts before ``steps`` still ends with its decay done, as in
    budgeted training (Li, Yumer and Ramanan 2020: a linear schedule planned on the budget).
    Without a budget (``max_seconds`` 0) it is :func:`linear_decay`.
    """
    by_steps = linear_decay(steps, decay_fraction)

    def factor(step: int, elapsed: float) -> float:
        if max_seconds > 0:
            step = max(step, int(steps * min(1.0, elapsed / max_seconds)))
        return by_steps(step)

    return factor
