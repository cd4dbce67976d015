"""Building what a run trains from its config: the nets, the game, the constraint, the
optimisers, the held-out batch, and the process settings the step relies on."""

from __future__ import annotations

import ctypes
import math
import sys
import warnings

import torch

from wganlab.config import ConfigError, TrainConfig
from wganlab.core.constraints import Constraint, make_constraint
from wganlab.core.nets import (AutoencoderCritic, conv_critic, conv_generator, image_mlp_generator,
                               maxout_critic, mlp_critic, mlp_generator, resolve_net)
from wganlab.core.objectives import Objective, get_objective
from wganlab.core.packing import PackedCritic, packed_shape
from wganlab.training.distributed import local_rank
from wganlab.training.optim import optimizer_classes

HELD_OUT_SEED_OFFSET = 1_000_003  # the held-out batch's stream: seed + this, apart from the training stream


def build_generator(config: TrainConfig, shape: int | tuple[int, ...]) -> torch.nn.Module:
    """The generator for data of per-sample ``shape`` (an int: flat vectors of that dimension)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if len(shape) == 1 and config.net not in ("conv", "conv-mlp"):
        return _initialise(mlp_generator(config.latent_dim, shape[0], config.hidden, config.depth,
                                         config.generator_batch_norm), config.init_std)
    if resolve_net(config.net, shape) in ("conv", "conv-mlp"):
        return conv_generator(config.latent_dim, shape[0], config.conv_width)
    return image_mlp_generator(config.latent_dim, shape, config.hidden, config.depth, config.generator_batch_norm)


def build_critic(config: TrainConfig, shape: int | tuple[int, ...]) -> torch.nn.Module:
    """The critic the objective needs (BEGAN's is an autoencoder) for data of per-sample
    ``shape``, prepared by the constraint (spectral normalisation re-parametrises it).

    Under packing (``config.pack`` m > 1) the net is built for packs of m samples and wrapped in
    a :class:`PackedCritic`, which scores unpacked batches too."""
    sample_shape = (shape,) if isinstance(shape, int) else tuple(shape)
    shape = packed_shape(sample_shape, config.pack)
    hidden, depth = config.critic_hidden or config.hidden, config.critic_depth or config.depth  # the MLP critics'
    vectors = len(shape) == 1 and config.net not in ("conv", "conv-mlp")  # else images, flattened for an MLP
    if objective_of(config).critic_kind == "autoencoder":
        critic = AutoencoderCritic(math.prod(shape), config.hidden, config.depth, norm=config.critic_norm)
        if len(shape) > 1:
            critic = torch.nn.Sequential(torch.nn.Flatten(), critic)
    elif not vectors and resolve_net(config.net, sample_shape) == "conv":  # the data decides; packing its channels
        if config.maxout_pieces:
            raise ConfigError(f"maxout_pieces {config.maxout_pieces} makes an MLP critic's units maxout; the conv "
                              f"critic has none: set maxout_pieces = 0 or net = \"mlp\"")
        if config.critic_hidden or config.critic_depth:
            raise ConfigError(f"critic_hidden {config.critic_hidden} / critic_depth {config.critic_depth} size an MLP "
                              f"critic; the conv critic's size is conv_width ({config.conv_width}): set both to 0, "
                              f"or net = \"mlp\"")
        critic = conv_critic(shape[0], config.critic_norm, config.conv_width)
    else:  # an MLP critic: on vectors, or on images flattened
        critic = (maxout_critic(math.prod(shape), hidden, depth, config.maxout_pieces) if config.maxout_pieces
                  else mlp_critic(math.prod(shape), hidden, depth, norm=config.critic_norm))
        critic = _initialise(critic, config.init_std) if vectors else torch.nn.Sequential(torch.nn.Flatten(), critic)
    critic = constraint_of(config).prepare(critic)
    return PackedCritic(critic, sample_shape, config.pack) if config.pack > 1 else critic


def _initialise(net: torch.nn.Module, std: float) -> torch.nn.Module:
    """``init_std`` > 0: every Linear weight N(0, std^2) and bias 0 (PacGAN's and VEEGAN's
    IsotropicGaussian(0.02) with Constant(0)); 0 leaves torch's default initialisation."""
    if std > 0:
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.normal_(0.0, std)
                    if module.bias is not None:
                        module.bias.zero_()
    return net


def objective_of(config: TrainConfig) -> Objective:
    """The config's game, built from the config keys it declares (a fresh one for stateful games)."""
    return get_objective(config.objective, **config.to_dict())


def constraint_of(config: TrainConfig) -> Constraint:
    """The config's Lipschitz constraint, built from the config keys it declares."""
    return make_constraint(config.constraint, **config.to_dict())


def make_optimizer(config: TrainConfig, params, lr: float) -> torch.optim.Optimizer:
    # speed: one fused kernel per step for all parameters where torch has it (Adam on CPU and
    # CUDA since torch 2.4), else the multi-tensor (foreach) form; both the same update. The
    # classes are torch's, minus the compile wrappers that import torch._dynamo (training.optim).
    adam, rmsprop = optimizer_classes()
    params = list(params)
    if config.optimizer == "adam":
        try:
            return adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=True)
        except (RuntimeError, TypeError, ValueError):
            return adam(params, lr=lr, betas=(config.beta1, config.beta2), foreach=True)
    return rmsprop(params, lr=lr, foreach=True)


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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matmuls natively: a CUDA device that says so, a CPU with
    AVX512-BF16 or AMX (elsewhere oneDNN emulates them, slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True  # nothing to ask: no warning
    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    probes = [probe for probe in (getattr(torch.cpu, name, None) for name in names) if probe is not None]
    return not probes or any(probe() for probe in probes)  # a torch without the probes: nothing to ask


def check_precision(config: TrainConfig, device: torch.device) -> None:
    """A warning when bf16 is asked for where its matmuls are emulated: the run is then slower
    than in fp32, which is what bf16 is there to avoid (the image default asks for it). Under
    torchrun only the first process of each machine (``LOCAL_RANK`` 0) says it, not every rank."""
    if local_rank() != 0:
        return
    if config.precision == "bf16" and not native_bf16(device):
        warnings.warn(f"precision bf16: this {device.type} has no native bf16 matmuls (AVX512-BF16 or AMX), so "
                      "they are emulated and slower than fp32; add --precision fp32", stacklevel=3)


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


# A run holds each parameter about 8 times (weights, gradients, two Adam moments, the EMA, the
# rollback snapshot, a checkpoint buffer) and each activation about 8 times (forward and backward
# of both nets, and the penalty's double backward); the exact W1 holds two float64 cost matrices.
_PARAM_COPIES, _ACTIVATION_COPIES, _BYTES = 8, 8, 4
_CONV_ACTIVATIONS = 48_000  # floats per 28x28 sample in the conv generator and critic together


def memory_needed(config: TrainConfig, shape: tuple[int, ...]) -> dict[str, float]:
    """Bytes a run of ``config`` on samples of ``shape`` needs, by the flag that drives each part."""
    dim = math.prod(shape)
    h, depth, z = config.hidden, config.depth, config.latent_dim
    net = resolve_net(config.net, shape) if len(shape) > 1 else "mlp"
    if net == "conv":  # the parameters grow as the width squared, the activations as the width
        scale = config.conv_width / 64
        params = z * 64 * config.conv_width + 2_200_000 * scale ** 2
        per_sample = _CONV_ACTIVATIONS * scale + dim
    else:
        params = (z * h + (depth - 1) * h * h + h * dim) + (dim * h + (depth - 1) * h * h + h)
        per_sample = 2 * depth * h + 4 * dim + z
    if net == "conv-mlp":  # a conv generator's half of the conv figures beside the MLP's
        scale = config.conv_width / 64
        params += z * 64 * config.conv_width + 1_100_000 * scale ** 2
        per_sample += _CONV_ACTIVATIONS * scale / 2
    return {
        "hidden": params * _BYTES * _PARAM_COPIES,  # the networks: driven by --hidden and --depth
        "batch_size": config.batch_size * per_sample * _BYTES * _ACTIVATION_COPIES,
        "eval_samples": config.eval_samples * (per_sample + dim) * _BYTES * 2,
        "held_out": config.held_out * per_sample * _BYTES * _ACTIVATION_COPIES,
        "w1_samples": 2 * config.w1_samples ** 2 * 8 * (dim == 2 or len(shape) == 1),
    }


SIZE_FLAGS = ("hidden", "depth", "conv_width", "latent_dim", "batch_size", "eval_samples", "held_out", "w1_samples")


def check_memory(config: TrainConfig, shape: tuple[int, ...]) -> None:
    """Refuses, before anything is allocated or written, a run whose sizes need more memory than
    the machine has: one line naming the flag that is most over the top and the largest value
    of it that fits."""
    import dataclasses

    from wganlab.config import ConfigError
    from wganlab.util.memory import human, largest_fitting, memory_budget

    budget = memory_budget()
    total = sum(memory_needed(config, shape).values())
    if total <= budget:
        return

    def need(key: str, value: int) -> float:
        return sum(memory_needed(dataclasses.replace(config, **{key: value}), shape).values())

    fits = {key: largest_fitting(lambda v, k=key: need(k, v), getattr(config, key), budget) for key in SIZE_FLAGS}
    alone = [k for k in SIZE_FLAGS if fits[k] and (k != "depth" or config.depth > 8)]  # not "depth 1" for width
    if alone:  # the flag whose value is the most times over what would fit
        key = max(alone, key=lambda k: getattr(config, k) / fits[k])
    else:  # none fixes it alone: the one whose cut to 1 saves most
        key = max(SIZE_FLAGS, key=lambda k: total - need(k, 1))
    hint = f"at most about {fits[key]} fits here" if fits[key] else "and the other sizes"
    raise ConfigError(f"--{key.replace('_', '-')} {getattr(config, key)} needs about {human(total)} of memory, "
                      f"more than the {human(budget)} this machine can give a run; "
                      f"lower --{key.replace('_', '-')} ({hint})")
