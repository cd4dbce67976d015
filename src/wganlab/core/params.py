"""A registry entry's hyperparameter: the config key it reads and the rule its value obeys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Param:
    """A hyperparameter a registry entry reads from the config.

    Attributes:
        key: the config key (a ``TrainConfig`` field), passed to the entry's builder by that name.
        check: value -> True when allowed.
        rule: what ``check`` requires, for the error message ("must be in (0, 1]").
    """

    key: str
    check: Callable[[Any], bool]
    rule: str


def check_params(params, values: dict) -> None:
    """Raises ValueError naming the first of ``params`` whose value in ``values`` breaks its rule."""
    for param in params:
        if param.key in values and not param.check(values[param.key]):
            raise ValueError(f"{param.key} {param.rule}, got {values[param.key]}")
