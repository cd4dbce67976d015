"""Networks: multilayer perceptrons for low-dimensional data, conv nets for 28x28 images."""

from __future__ import annotations

import math

import torch
from torch import nn


def slope_mask(x: torch.Tensor, negative_slope: float = 0.0) -> torch.Tensor:
    """d LeakyReLU / dx at x, a constant tensor: 1 where x > 0, else ``negative_slope``."""
    x = x.detach()
    try:
        mask = torch.empty_like(x, memory_format=torch.contiguous_format)
        torch.gt(x, 0, out=mask)  # written straight as floats: 6x faster than (x > 0).to(dtype)
    except RuntimeError:  # inside torch.func.vmap, which has no rule for out=
        mask = (x > 0).to(x.dtype)
    if negative_slope:
        mask.mul_(1 - negative_slope).add_(negative_slope)
    return mask


class MaskedLeakyReLU(nn.Module):
    """LeakyReLU (ReLU at ``negative_slope = 0``) written as ``x * slope_mask(x)``.

    The same function and the same first and second derivatives as ``nn.LeakyReLU``, built
    for critics under an input-gradient penalty. torch's double backward of relu/leaky_relu
    returns a zero tensor for the input, and autograd carries those zeros back through every
    layer below (matmuls with zeros, weight "gradients" of zeros). Here the backward is a
    product with a constant mask, so the penalty's backward stops at the mask: 1.5x fewer
    FLOPs in the penalty's backward of the 3x512 critic, bit-identical gradients
    (``tests/test_nets.py``).
    """

    def __init__(self, negative_slope: float = 0.0):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * slope_mask(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class MLP(nn.Sequential):
    """depth x (Linear -> [BatchNorm] -> activation), then a Linear to ``out_dim``.

    Maps (B, in_dim) to (B, out_dim). The generator and the critic of the WGAN-GP toy
    experiments are both this net with 3 hidden layers of 512 units and ReLU (the critic's
    is :class:`MaskedLeakyReLU`, the same function).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, depth: int = 3,
                 batch_norm: bool = False, norm: str = "none", activation=nn.ReLU):
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
            layers.append(activation())
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
    return MLP(data_dim, 1, hidden, depth, norm=norm, activation=MaskedLeakyReLU)


class Maxout(nn.Module):
    """A maxout layer (Goodfellow et al. 2013): ``pieces`` linear maps, the elementwise max of them."""

    def __init__(self, in_dim: int, out_dim: int, pieces: int):
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = nn.Linear(in_dim, out_dim * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (self.out_dim, self.pieces)).amax(-1)


def maxout_critic(data_dim: int, hidden: int, depth: int, pieces: int) -> nn.Sequential:
    """x (B, data_dim) -> score (B, 1): ``depth`` maxout layers of ``hidden`` units, then a Linear.
    PacGAN's 2D discriminator (after VEEGAN's): 3 layers of 200 units, 5 pieces each."""
    if min(data_dim, hidden, depth, pieces) < 1:
        raise ValueError(f"maxout sizes must be positive, got in={data_dim} hidden={hidden} depth={depth} "
                         f"pieces={pieces}")
    layers = [Maxout(data_dim if i == 0 else hidden, hidden, pieces) for i in range(depth)]
    return nn.Sequential(*layers, nn.Linear(hidden, 1))


class AutoencoderCritic(nn.Module):
    """BEGAN's critic: an MLP autoencoder whose score is the per-sample L1 reconstruction error.

    Maps (B, data_dim) to (B,) errors mean_j |x_j - AE(x)_j|. The code has data_dim units:
    for 2D data there is nothing to compress, and the critic learns to reconstruct real data
    well and generated data badly.
    """

    def __init__(self, data_dim: int, hidden: int, depth: int, norm: str = "none"):
        super().__init__()
        self.encoder = MLP(data_dim, data_dim, hidden, depth, norm=norm, activation=MaskedLeakyReLU)
        self.decoder = MLP(data_dim, data_dim, hidden, depth, norm=norm, activation=MaskedLeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.decoder(self.encoder(x))).abs().flatten(1).mean(1)


# -- convolutional nets for 28x28 images (the WGAN-GP MNIST setup) ----------------------------

_CONV_WIDTH = 64  # DIM of the WGAN-GP MNIST code: 64-128-256 channels


class ConvGenerator(nn.Module):
    """DCGAN-style generator for 28x28 images: z (B, latent_dim) -> x (B, channels, 28, 28) in [-1, 1].

    Linear to 4x4x256, then three 5x5 stride-2 transposed convs 256 -> 128 -> 64 -> channels
    (4 -> 8, cropped to 7, -> 14 -> 28), BatchNorm + ReLU between them and tanh at the end,
    as the generator of Gulrajani et al.'s ``gan_mnist.py`` (tanh instead of its sigmoid:
    our images live in [-1, 1]).
    """

    def __init__(self, latent_dim: int = 128, channels: int = 1, width: int = _CONV_WIDTH):
        super().__init__()
        if min(latent_dim, channels, width) < 1:
            raise ValueError(f"conv generator sizes must be positive, got latent={latent_dim} channels={channels} width={width}")
        self.latent_dim, self.channels, self.width = latent_dim, channels, width
        self.project = nn.Sequential(nn.Linear(latent_dim, 4 * 4 * 4 * width), nn.BatchNorm1d(4 * 4 * 4 * width), nn.ReLU())

        def up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
            # kernel 5, stride 2, padding 2, output_padding 1 doubles the side exactly
            return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)

        self.up1 = nn.Sequential(up(4 * width, 2 * width), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.up2 = nn.Sequential(up(2 * width, width), nn.BatchNorm2d(width), nn.ReLU())
        self.up3 = nn.Sequential(up(width, channels), nn.Tanh())

    def forward(self, z):
        x = self.project(z).view(-1, 4 * self.width, 4, 4)
        x = self.up1(x)[:, :, :7, :7]  # 8x8 -> 7x7 so that two doublings land on 28
        return self.up3(self.up2(x))


class ConvCritic(nn.Module):
    """Critic for 28x28 images: x (B, channels, 28, 28) -> score (B, 1).

    Three 5x5 stride-2 convs 64 -> 128 -> 256 (28 -> 14 -> 7 -> 4), LeakyReLU 0.2, then a
    linear read-out, as the critic of the WGAN-GP MNIST code. ``norm="layer"`` adds a
    per-sample layer norm (GroupNorm with one group) after the second and third convs;
    never BatchNorm: it couples the samples of a batch and breaks the per-sample penalty.
    """

    NORMS = ("none", "layer")

    def __init__(self, channels: int = 1, norm: str = "none", width: int = _CONV_WIDTH):
        super().__init__()
        if norm not in self.NORMS:
            raise ValueError(f"unknown critic norm {norm!r}; choose one of: {', '.join(self.NORMS)}")
        if min(channels, width) < 1:
            raise ValueError(f"conv critic sizes must be positive, got channels={channels} width={width}")
        self.channels = channels

        def block(c_in: int, c_out: int, normed: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 5, stride=2, padding=2)]
            if normed and norm == "layer":
                layers.append(nn.GroupNorm(1, c_out))
            return layers + [MaskedLeakyReLU(0.2)]

        self.features = nn.Sequential(*block(channels, width, False), *block(width, 2 * width, True),
                                      *block(2 * width, 4 * width, True), nn.Flatten())
        self.read_out = nn.Linear(4 * 4 * 4 * width, 1)

    def forward(self, x):
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, 28, 28):
            raise ValueError(f"conv critic expects (B, {self.channels}, 28, 28) images, got {tuple(x.shape)}")
        return self.read_out(self.features(x))


def conv_generator(latent_dim: int = 128, channels: int = 1, width: int = _CONV_WIDTH) -> ConvGenerator:
    """z (B, latent_dim) -> images (B, channels, 28, 28) in [-1, 1]; BatchNorm, as WGAN-GP's MNIST generator."""
    return ConvGenerator(latent_dim, channels, width)


def conv_critic(channels: int = 1, norm: str = "none", width: int = _CONV_WIDTH) -> ConvCritic:
    """images (B, channels, 28, 28) -> scores (B, 1); ``norm`` is "none" or "layer", never BatchNorm."""
    return ConvCritic(channels, norm, width)


def resolve_net(net: str, shape: tuple[int, ...]) -> str:
    """``"conv"``, ``"mlp"`` or ``"conv-mlp"`` (a conv generator, an MLP critic) for data of
    per-sample ``shape``; ``"auto"`` picks conv for (C, 28, 28)."""
    conv_ok = len(shape) == 3 and tuple(shape[1:]) == (28, 28) and shape[0] in (1, 3)
    if net == "auto":
        return "conv" if conv_ok else "mlp"
    if net in ("conv", "conv-mlp") and not conv_ok:
        raise ValueError(f"net {net!r} needs (C, 28, 28) images, but the data is {tuple(shape)}; use --net mlp")
    if net not in ("conv", "mlp", "conv-mlp"):
        raise ValueError(f"unknown net {net!r}; choose one of: auto, mlp, conv, conv-mlp")
    return net


def image_mlp_generator(latent_dim: int, shape: tuple[int, ...], hidden: int, depth: int,
                        batch_norm: bool = False) -> nn.Sequential:
    """An MLP generator for images: z (B, latent_dim) -> (B, *shape) in [-1, 1] (tanh)."""
    return nn.Sequential(mlp_generator(latent_dim, math.prod(shape), hidden, depth, batch_norm), nn.Tanh(),
                         nn.Unflatten(1, tuple(shape)))


def image_mlp_critic(shape: tuple[int, ...], hidden: int, depth: int) -> nn.Sequential:
    """An MLP critic for images: (B, *shape) -> (B, 1)."""
    return nn.Sequential(nn.Flatten(), mlp_critic(math.prod(shape), hidden, depth))
