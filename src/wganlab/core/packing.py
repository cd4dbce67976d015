"""Packing (PacGAN, Lin et al. 2018): the critic scores m samples concatenated.

With ``pack = m`` the critic sees a batch of B samples as B/m packed samples, each m
consecutive samples concatenated along the feature (MLP) or channel (conv) dimension, and
gives one score per pack. A generator that drops modes yields packs whose members are too
alike, which a packed critic sees at once; that is PacGAN's case against mode collapse.

Packing is a reshape in front of any critic and touches nothing else:

* the nets are built for the packed sample shape (``packed_shape``);
* the step composition (``wganlab.training.step``) packs the real and fake batches before
  the objective and the constraint see them, so a penalty is taken at *packed* interpolates,
  one interpolation weight per packed sample, with the norm over the whole pack;
* :class:`PackedCritic` lets every other reader (the W estimate, the doctor, the pictures)
  score unpacked batches as before.

``pack = 1`` builds no wrapper and reshapes nothing: the same run, bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn


def packed_shape(shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
    """The per-sample shape the critic sees: the first (feature or channel) dimension times ``pack``."""
    shape = tuple(shape)
    return (shape[0] * pack, *shape[1:])


def whole_packs(n: int, pack: int) -> int:
    """The most of ``n`` points that split into packs of ``pack`` (a packed critic scores whole packs)."""
    return n // pack * pack


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(B, C, ...) -> (B / pack, pack * C, ...): each ``pack`` consecutive samples concatenated."""
    if pack == 1:
        return x
    batch = x.shape[0]
    if batch % pack:
        raise ValueError(f"a batch of {batch} samples does not split into packs of pack={pack}; "
                         f"use a batch size (and held-out size) that is a multiple of pack")
    return x.reshape(batch // pack, pack * x.shape[1], *x.shape[2:])


class PackedCritic(nn.Module):
    """A critic on packed samples that also scores unpacked batches.

    ``forward`` takes a batch of the data's sample shape, packs it and scores the packs, or a
    batch already packed (the step composition's), which it scores as it is. Any other shape
    is an error that names ``pack``.
    """

    def __init__(self, net: nn.Module, sample_shape: tuple[int, ...], pack: int):
        super().__init__()
        if pack < 2:
            raise ValueError(f"PackedCritic needs pack >= 2, got pack={pack} (pack=1 uses the critic as it is)")
        self.net, self.pack = net, pack
        self.sample_shape, self.packed_shape = tuple(sample_shape), packed_shape(sample_shape, pack)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape[1:])
        if shape == self.sample_shape:
            x = pack_samples(x, self.pack)
        elif shape != self.packed_shape:
            raise ValueError(f"the packed critic (pack={self.pack}) scores samples of shape {self.sample_shape} "
                             f"or packs of shape {self.packed_shape}, got a batch of shape {tuple(x.shape)}")
        return self.net(x)

    def extra_repr(self) -> str:
        return f"pack={self.pack}"


def pack_of(critic) -> int:
    """The critic's pack (1 for an unpacked critic or a plain scoring function)."""
    return critic.pack if isinstance(critic, PackedCritic) else 1


def score_points(critic, points: torch.Tensor) -> torch.Tensor:
    """(N, 1) scores of each point on its own: a packed critic scores a pack of ``pack`` copies of
    the point (its value surface along the diagonal), an unpacked one the point."""
    pack = pack_of(critic)
    return critic(points.repeat_interleave(pack, dim=0) if pack > 1 else points)
