"""Networks: multilayer perceptrons for low-dimensional data."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """depth x (Linear -> [BatchNorm] -> ReLU), then a Linear to ``out_dim``.

    Maps (B, in_dim) to (B, out_dim). The generator and the critic of the WGAN-GP toy
    experiments are both this net with 3 hidden layers of 512 units.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, depth: int = 3,
                 batch_norm: bool = False):
        if min(in_dim, out_dim, hidden) < 1 or depth < 0:
            raise ValueError(f"MLP sizes must be positive, got in={in_dim} out={out_dim} hidden={hidden} depth={depth}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers.append(nn.Linear(width, hidden))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.ReLU())
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim


def mlp_generator(latent_dim: int, data_dim: int, hidden: int, depth: int, batch_norm: bool = False) -> MLP:
    """z (B, latent_dim) -> x (B, data_dim)."""
    return MLP(latent_dim, data_dim, hidden, depth, batch_norm)


def mlp_critic(data_dim: int, hidden: int, depth: int) -> MLP:
    """x (B, data_dim) -> score (B, 1). No BatchNorm: a per-sample gradient penalty needs
    per-sample outputs, and BatchNorm makes each output depend on the whole batch."""
    return MLP(data_dim, 1, hidden, depth)
