"""The data registry's entry: what a built-in data set declares of itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from wganlab.core.params import Param


@dataclass(frozen=True)
class DatasetEntry:
    """A built-in data set.

    Attributes:
        name: the ``--data`` name.
        kind: "toy" (points, scored by the PacGAN protocol and an exact W1) or "image"
            (FID / KID / class counts).
        shape: the per-sample shape, known without loading anything.
        description: one line for ``--help`` and the docs.
        build: (**params) -> the data set; ``params`` are config keys (None keeps the
            published default), image sets also receive ``data_dir``.
        params: the config keys the builder reads, with their rules.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    description: str
    build: Callable
    params: tuple[Param, ...] = ()
