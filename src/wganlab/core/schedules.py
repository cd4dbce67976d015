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
