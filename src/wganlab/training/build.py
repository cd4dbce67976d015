"""Building what a run trains from its config: the nets, the game, the constraint, the
optimisers, the held-out batch, and the process settings the step relies on."""

from __future__ import annotations

import ctypes
import math
import sys

import torch

from wganlab.config import TrainConfig
from wganlab.core.constraints import Constraint, make_constraint
from wganlab.core.nets import (AutoencoderCritic, conv_critic, conv_generator, image_mlp_critic, image_mlp_generator,
                               mlp_critic, mlp_generator, resolve_net)
from wganlab.core.objectives import Objective, get_objective

HELD_OUT_SEED_OFFSET = 1_000_003  # the held-out batch's stream: seed + this, apart from the training stream


def build_generator(config: TrainConfig, shape: int | tuple[int, ...]) -> torch.nn.Module:
    """The generator for data of per-sample ``shape`` (an int: flat vectors of that dimension)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if len(shape) == 1 and config.net != "conv":
        return mlp_generator(config.latent_dim, shape[0], config.hidden, config.depth, config.generator_batch_norm)
    if resolve_net(config.net, shape) == "conv":
        return conv_generator(config.latent_dim, shape[0])
    return image_mlp_generator(config.latent_dim, shape, config.hidden, config.depth, config.generator_batch_norm)


def build_critic(config: TrainConfig, shape: int | tuple[int, ...]) -> torch.nn.Module:
    """The critic the objective needs (BEGAN's is an autoencoder) for data of per-sample
    ``shape``, prepared by the constraint (spectral normalisation re-parametrises it)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if objective_of(config).critic_kind == "autoencoder":
        critic = AutoencoderCritic(math.prod(shape), config.hidden, config.depth, norm=config.critic_norm)
        if len(shape) > 1:
            critic = torch.nn.Sequential(torch.nn.Flatten(), critic)
    elif len(shape) == 1 and config.net != "conv":
        critic = mlp_critic(shape[0], config.hidden, config.depth, norm=config.critic_norm)
    elif resolve_net(config.net, shape) == "conv":
        critic = conv_critic(shape[0], config.critic_norm)
    else:
        critic = image_mlp_critic(shape, config.hidden, config.depth)
    return constraint_of(config).prepare(critic)


def objective_of(config: TrainConfig) -> Objective:
    """The config's game, built from the config keys it declares (a fresh one for stateful games)."""
    return get_objective(config.objective, **config.to_dict())


def constraint_of(config: TrainConfig) -> Constraint:
    """The config's Lipschitz constraint, built from the config keys it declares."""
    return make_constraint(config.constraint, **config.to_dict())


def make_optimizer(config: TrainConfig, params, lr: float) -> torch.optim.Optimizer:
    # speed: one fused kernel per step for all parameters where torch has it (Adam on CPU and
    # CUDA since torch 2.4), else the multi-tensor (foreach) form; both the same update.
    params = list(params)
    if config.optimizer == "adam":
        try:
            return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=True)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), foreach=True)
    return torch.optim.RMSprop(params, lr=lr, foreach=True)


def held_out_batch(dataset, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out (real, z) of ``config.held_out`` samples for the critic's W estimate,
    drawn from a stream of its own so that measuring never moves the training stream."""
    stream = torch.Generator().manual_seed(config.seed + HELD_OUT_SEED_OFFSET)
    real = dataset.sample(config.held_out, generator=stream)
    return real, torch.randn(config.held_out, config.latent_dim, generator=stream)


def autocast(config: TrainConfig, device: torch.device):
    """speed: bf16 autocast of the nets' matmuls under ``precision = "bf16"``, a no-op for fp32.

    Scores are cast back to fp32 before any loss, and the penalty's gradient norms, their
    squares and means are fp32 (the input gradient of fp32 points is fp32).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")


_MALLOC_TUNED = False


def keep_freed_memory_for_reuse() -> None:
    """speed: let glibc keep the memory of freed CPU tensors for the next step (once per process).

    Each training step frees and re-allocates the same activation-sized blocks. glibc serves
    blocks above its mmap threshold (128 KiB at start) with fresh pages from the kernel and
    gives them back on free, so every step page-faulted them in again: 20-35% of a 3x128
    WGAN-GP step here. High mmap and trim thresholds keep them in the heap, as jemalloc or
    tcmalloc would (PyTorch's CPU performance guide suggests those). No-op off glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's mallopt parameter numbers
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value
    libc.mallopt(m_trim_threshold, 256 << 20)
    libc.mallopt(m_top_pad, 16 << 20)
