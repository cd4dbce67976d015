"""Networks: multilayer perceptrons for low-dimensional data."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Sequential):
    """depth x (Linear -> [BatchNorm] -> ReLU), then a Linear to ``out_dim``.

    Maps (B, in_dim) to (B, out_dim). The generator and the critic of the WGAN-GP toy
    experiments are both this net with 3 hidden layers of 512 units.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, depth: int = 3,
                 batch_norm: bool = False, norm: str = "none"):
        if min(in_dim, out_dim, hidden) < 1 or depth < 0:
            raise ValueError(f"MLP sizes must be positive, got in={in_dim} out={out_dim} hidden={hidden} depth={depth}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers.append(nn.Linear(width, hidden))
            if batch_norm or norm == "batch":
                layers.append(nn.BatchNorm1d(hidden))
            elif norm == "layer":
                layers.append(nn.LayerNorm(hidden))
            layers.append(nn.ReLU())
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim


def mlp_generator(latent_dim: int, data_dim: int, hidden: int, depth: int, batch_norm: bool = False) -> MLP:
    """z (B, latent_dim) -> x (B, data_dim)."""
    return MLP(latent_dim, data_dim, hidden, depth, batch_norm)


def mlp_critic(data_dim: int, hidden: int, depth: int, norm: str = "none") -> MLP:
    """x (B, data_dim) -> score (B, 1). ``norm`` is "none", "layer" or "batch"; a per-sample
    gradient penalty needs per-sample outputs, which BatchNorm breaks (config refuses it)."""
    if norm not in ("none", "layer", "batch"):
        raise ValueError(f"critic norm must be none, layer or batch, got {norm!r}")
    return MLP(data_dim, 1, hidden, depth, norm=norm)


class AutoencoderCritic(nn.Module):
    """BEGAN's critic: an MLP autoencoder whose score is the per-sample L1 reconstruction error.

    Maps (B, data_dim) to (B,) errors mean_j |x_j - AE(x)_j|. The code has data_dim units:
    for 2D data there is nothing to compress, and the critic learns to reconstruct real data
    well and generated data badly.
    """

    def __init__(self, data_dim: int, hidden: int, depth: int, norm: str = "none"):
        super().__init__()
        self.encoder = MLP(data_dim, data_dim, hidden, depth, norm=norm)
        self.decoder = MLP(data_dim, data_dim, hidden, depth, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.decoder(self.encoder(x))).abs().flatten(1).mean(1)
