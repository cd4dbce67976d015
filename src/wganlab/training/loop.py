"""The training loop: it owns the networks, the optimisers and the schedule.

One loop serves every objective x constraint: a critic phase run ``n_critic`` times, then a
generator phase. Objectives and constraints are pure pieces (see ``objectives`` and
``constraints``); the loop never branches on their names.

Hot-loop statistics stay on the device and are read (one host sync) every ``log_every``
steps, when a line is appended to ``metrics.jsonl``.
"""

from __future__ import annotations

import copy
import ctypes
import math
import random
import sys
import time

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from wganlab.config import TrainConfig, validate
from wganlab.core.constraints import PROJECTION_ONLY, interpolation_weights, make_constraint
from wganlab.core.critic_gradients import critic_step_gradients, mlp_layers
from wganlab.training.distributed import rank_and_world_size
from wganlab.data import make_dataset
from wganlab.metrics.toy import evaluate_toy
from wganlab.core.nets import (AutoencoderCritic, conv_critic, conv_generator, image_mlp_critic, image_mlp_generator,
                          mlp_critic, mlp_generator, resolve_net)
from wganlab.core.objectives import get_objective
from wganlab.runs.folder import RunFolder
from wganlab.core.update_rules import make_update_rule

HELD_OUT = 1024  # samples in the fixed held-out batch for the critic's Wasserstein estimate


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
    if _objective(config).critic_kind == "autoencoder":
        critic = AutoencoderCritic(math.prod(shape), config.hidden, config.depth, norm=config.critic_norm)
        if len(shape) > 1:
            critic = torch.nn.Sequential(torch.nn.Flatten(), critic)
    elif len(shape) == 1 and config.net != "conv":
        critic = mlp_critic(shape[0], config.hidden, config.depth, norm=config.critic_norm)
    elif resolve_net(config.net, shape) == "conv":
        critic = conv_critic(shape[0], config.critic_norm)
    else:
        critic = image_mlp_critic(shape, config.hidden, config.depth)
    return _constraint(config).prepare(critic)


def _objective(config: TrainConfig):
    return get_objective(config.objective, began_gamma=config.began_gamma, began_lambda_k=config.began_lambda_k)


def _constraint(config: TrainConfig):
    return make_constraint(config.constraint, gp_weight=config.gp_weight, clip=config.clip)


def _optimizer(config: TrainConfig, params, lr: float) -> torch.optim.Optimizer:
    # speed: one fused kernel per step for all parameters where torch has it (Adam on CPU and
    # CUDA since torch 2.4), else the multi-tensor (foreach) form; both the same update.
    params = list(params)
    if config.optimizer == "adam":
        try:
            return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=True)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), foreach=True)
    return torch.optim.RMSprop(params, lr=lr, foreach=True)


_MALLOC_TUNED = False


def keep_freed_memory_for_reuse() -> None:
    """speed: let glibc keep the memory of freed CPU tensors for the next step (once per process).

    Each training step frees and re-allocates the same activation-sized blocks. glibc serves
    blocks above its mmap threshold (128 KiB at start) with fresh pages from the kernel and
    gives them back on free, so every step page-faults them in again: 20-35% of a 3x128
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


def _autocast(config: TrainConfig, device: torch.device):
    """speed: bf16 autocast of the nets' matmuls under ``precision = "bf16"``, a no-op for fp32.

    Scores are cast back to fp32 before any loss, and the penalty's gradient norms, their
    squares and means are fp32 (the input gradient of fp32 points is fp32).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")


def _lr_factor(config: TrainConfig):
    """Constant, then a linear decay to zero over the final ``lr_decay_fraction`` of steps."""
    decay_steps = round(config.steps * config.lr_decay_fraction)
    start = config.steps - decay_steps

    def factor(step: int) -> float:
        if decay_steps == 0 or step < start:
            return 1.0
        return max(0.0, (config.steps - step) / decay_steps)

    return factor


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN or Inf."""


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the run's config (another architecture or objective)."""


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's data, noise and interpolation stream; rank 0 is a single process's."""
    return seed + 1_000_033 * rank


def _numpy_state_to_torch(state) -> dict:
    # numpy's MT19937 state as tensors and ints, so a checkpoint loads with weights_only=True
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_torch(state: dict):
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])


class Trainer:
    """Trains one GAN from a validated :class:`TrainConfig`.

    Args:
        config: the run's config.
        run: where to write; None trains without writing anything (tests, sweeps).
        progress: show a progress bar with the live figures.
        callbacks: observers of the metric stream (a doctor, TensorBoard, a live view): any
            object with an optional ``on_record(trainer, record)``, called for every train
            and eval record as it is written, and ``on_end(trainer, summary)``.
        dataset: the data to train on, any object with ``dim`` and ``sample(n, generator) ->
            (n, dim) tensor`` (e.g. ``wganlab.data.array.ArrayDataset``); None builds
            ``config.data``.
    """

    def __init__(self, config: TrainConfig, run: RunFolder | None = None, progress: bool = False,
                 callbacks=(), dataset=None):
        self.config = validate(config)
        self.run = run
        self.progress = progress
        self.callbacks = list(callbacks)
        if config.threads:
            torch.set_num_threads(config.threads)
        keep_freed_memory_for_reuse()
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but torch sees no CUDA GPU; use --device cpu")

        self.rank, self.world_size = rank_and_world_size()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} does not split over {self.world_size} processes; "
                             f"give a multiple of {self.world_size}")
        self.local_batch = config.batch_size // self.world_size  # batch_size is the global batch

        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        # One stream for everything the loop draws (data, noise, interpolation weights), so a
        # seed fixes the run whatever else touches the global RNG; each rank has its own.
        self.rng = torch.Generator().manual_seed(rank_seed(config.seed, self.rank))

        self.dataset = dataset if dataset is not None else make_dataset(config)
        self.generator = build_generator(config, self.dataset.shape).to(self.device)
        self.critic = build_critic(config, self.dataset.shape).to(self.device)
        self.ema = None
        if config.ema > 0:
            self.ema = AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)

        # Under torchrun the phases run through DDP wrappers, which average parameter gradients
        # over ranks; everything else (EMA, state, evaluation) uses the plain modules.
        self.critic_train, self.generator_train = self.critic, self.generator
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.critic_train = DistributedDataParallel(self.critic, device_ids=ids,
                                                        static_graph=config.ddp_static_graph)
            self.generator_train = DistributedDataParallel(self.generator, device_ids=ids)

        self.objective = _objective(config)
        self.constraint = _constraint(config)
        self._critic_layers = self._hand_written_critic()
        # K = 1 views of the hand-written critic's parameters: the optimiser updates them in
        # place and a load copies into them, so the views stay current
        self._critic_views = None if self._critic_layers is None else (
            [layer.weight.unsqueeze(0) for layer in self._critic_layers[0]],
            [layer.bias.unsqueeze(0) for layer in self._critic_layers[0]])
        self._generator_has_batch_statistics = any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.generator.modules())
        self.opt_g = _optimizer(config, self.generator.parameters(), config.lr_g)
        self.opt_d = _optimizer(config, self.critic.parameters(), config.lr_d)
        self.schedules = [torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(config)) for opt in (self.opt_g, self.opt_d)]
        self.update_rule = make_update_rule(config)
        self.update_rule.attach(self)

        held_out = torch.Generator().manual_seed(config.seed + 1_000_003)
        self.held_real = self.dataset.sample(config.held_out, generator=held_out).to(self.device)
        self.held_z = torch.randn(config.held_out, config.latent_dim, generator=held_out).to(self.device)

        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.last_eval: dict | None = None
        self.last_train: dict | None = None
        # statistics summed on the device since the last log line
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self.lr_scale = 1.0  # halved at each rollback after a non-finite value
        self.rollbacks = 0
        self._good_state: dict | None = None  # the last state known finite, for a rollback
        self.stop_requested = False  # set by a signal handler: checkpoint after this step and stop
        self.interrupted = False
        self.stop_reason: str | None = None  # set by a callback (the doctor's --strict) to end the run early

    # -- sampling --------------------------------------------------------------------------
    @property
    def sampler(self) -> torch.nn.Module:
        """The generator whose samples the run reports: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        # speed: from pinned host memory a CUDA copy is asynchronous, so the draw of the next
        # batch on the CPU overlaps the GPU's work on this one.
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=True)

    def _noise(self, n: int) -> torch.Tensor:
        return self._to_device(torch.randn(n, self.config.latent_dim, generator=self.rng))

    def _real(self, n: int) -> torch.Tensor:
        return self._to_device(self.dataset.sample(n, generator=self.rng))

    @torch.no_grad()
    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        """The reported generator on ``z``, in eval mode, leaving its mode as it was."""
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            return net(z)
        finally:
            net.train(was_training)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """(n, *shape) samples of the reported generator from a seeded noise draw, on the CPU."""
        z = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self._generate(z.to(self.device)).float().cpu()

    # -- the two phases ----------------------------------------------------------------------
    def critic_step(self) -> dict:
        real, noise, eps = self._critic_draws()
        with _autocast(self.config, self.device), torch.no_grad():
            fake = self.generator(noise).float()
        return self._critic_update(real, fake, eps)

    def critic_phase(self, n: int) -> list[dict]:
        """n critic steps in a row, as n ``critic_step`` calls compute them.

        speed: with the hand-written critic step and a generator without batch statistics the
        n steps' draws are made first, in the order n ``critic_step`` calls make them (real,
        noise, interpolation weights), and the n fake batches come from one generator forward:
        the generator does not change during the phase, so that is the same function at one
        matmul per layer instead of n.
        """
        if self._critic_layers is None or self._generator_has_batch_statistics:
            return [self.critic_step() for _ in range(n)]
        draws = [self._critic_draws() for _ in range(n)]
        with _autocast(self.config, self.device), torch.no_grad():
            fakes = self.generator(torch.cat([noise for _, noise, _ in draws])).float().split(self.local_batch)
        return [self._critic_update(real, fake, eps) for (real, _, eps), fake in zip(draws, fakes)]

    def _critic_draws(self):
        """(real batch, noise, interpolation weights) of one critic step, in that order; the
        weights only for the hand-written step (the autograd path's penalty draws its own),
        else None."""
        real = self._real(self.local_batch)
        noise = self._noise(self.local_batch)
        if self._critic_layers is None or self.constraint.penalty_of_norms is None:
            return real, noise, None
        return real, noise, interpolation_weights(real, self.rng)

    def _critic_update(self, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None) -> dict:
        batch = self.local_batch
        if self._critic_layers is not None:
            scores, losses, penalty_stats = self._critic_gradients_by_hand(real, fake, eps)
        else:
            with _autocast(self.config, self.device):
                # One forward over real and fake: the critic has no batch statistics, so this is
                # the same function as two forwards, at one kernel launch per layer instead of two.
                scores = self.critic_train(torch.cat([real, fake])).float()
                losses = self.objective.critic(scores[:batch], scores[batch:])
                penalty, penalty_stats = self.constraint.penalty(self.critic_train, real, fake, self.rng)
            self.opt_d.zero_grad(set_to_none=True)
            (losses.total + penalty).backward()
        self.opt_d.step()
        projection_stats = self.constraint.project(self.critic)
        return {"d_loss": losses.total.detach(), "d_real": losses.real.detach(), "d_fake": losses.fake.detach(),
                **self._accuracy(scores.detach(), batch), **penalty_stats, **projection_stats,
                **self.objective.after_critic_step()}

    def _hand_written_critic(self):
        """(layers, slopes) when the critic step can take its gradients from
        ``wganlab.core.critic_gradients`` (a plain MLP critic, one process, fp32 or bf16, no penalty
        or one at the interpolates), else None: the autograd path."""
        config = self.config
        if config.critic_backward != "auto" or self.world_size > 1 or config.precision not in ("fp32", "bf16"):
            return None
        if self.constraint.name not in PROJECTION_ONLY and self.constraint.penalty_of_norms is None:
            return None
        return mlp_layers(self.critic)

    @torch.no_grad()
    def _critic_gradients_by_hand(self, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None):
        """Leaves the critic step's gradients in ``.grad``; returns (scores, losses, penalty stats)."""
        layers, slopes = self._critic_layers
        weights, biases = self._critic_views
        penalty, penalty_grad = self.constraint.penalty_of_norms, self.constraint.penalty_norm_grads
        objective = self.objective

        def critic_loss(real_scores, fake_scores):
            losses = objective.critic(real_scores[0], fake_scores[0])
            return losses.total, losses

        step = critic_step_gradients(weights, biases, slopes, real.unsqueeze(0), fake.unsqueeze(0),
                                     None if eps is None else eps.unsqueeze(0),
                                     critic_loss, None if penalty is None else lambda norms: penalty(norms[0]),
                                     loss_sample_grads=objective.critic_sample_grads, penalty_grad=penalty_grad,
                                     compute_dtype=torch.bfloat16 if self.config.precision == "bf16" else None)
        for layer, weight_grad, bias_grad in zip(layers, step.weight_grads, step.bias_grads):
            layer.weight.grad, layer.bias.grad = weight_grad[0], bias_grad[0]
        return step.scores[0], step.loss_stats, step.penalty_stats

    def _accuracy(self, scores: torch.Tensor, batch: int) -> dict:
        """D's accuracy on this step's batch at the objective's decision point (device tensor)."""
        threshold = self.objective.decision_threshold
        if threshold is None:
            return {}
        scores = scores.reshape(-1)
        right = (scores[:batch] > threshold).float().sum() + (scores[batch:] <= threshold).float().sum()
        return {"d_accuracy": right / scores.numel()}

    def generator_step(self, score=None, update_ema: bool = True) -> dict:
        """One generator update; ``score`` (fake -> scores) replaces the critic, as the unrolled
        rule does, and ``update_ema`` False leaves the EMA alone (an extragradient look-ahead)."""
        self.critic.requires_grad_(False)  # no critic parameter gradients in the generator phase
        try:
            with _autocast(self.config, self.device):
                fake = self.generator_train(self._noise(self.local_batch))
                loss = self.objective.generator((score or self.critic)(fake).float())
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        if self.ema is not None and update_ema:
            self.ema.update_parameters(self.generator)
        return {"g_loss": loss.detach()}

    # -- measurement -----------------------------------------------------------------------------
    @torch.no_grad()
    def wasserstein_estimate(self) -> float:
        """E f(x) - E f(G(z)) on the fixed held-out batch: the critic's own W1 estimate."""
        fake = self._generate(self.held_z)
        return float(self.critic(self.held_real).mean() - self.critic(fake).mean())

    def evaluate(self) -> dict:
        samples = self.sample(self.config.eval_samples, seed=self.config.seed)
        if not torch.isfinite(samples).all():
            raise NonFiniteError(f"the generator produced NaN/Inf samples at step {self.step}")
        if self.dataset.kind == "image":
            from wganlab.metrics.images import evaluate_images

            return evaluate_images(samples, self.dataset, seed=self.config.seed)
        # mode_counts stays in: modes visited over time (mode hopping) is read from it
        return evaluate_toy(samples, self.dataset, n_real=self.config.w1_samples, seed=self.config.seed)

    @torch.no_grad()
    def critic_surface(self, resolution: int = 100, margin: float = 0.25):
        """The critic's value on a grid covering the data: (xs, ys, values[res, res])."""
        points = torch.cat([self.held_real.cpu(), self.sample(HELD_OUT, self.config.seed)])
        low, high = points.min(0).values, points.max(0).values
        pad = margin * (high - low).clamp_min(1e-3)
        xs = torch.linspace(float(low[0] - pad[0]), float(high[0] + pad[0]), resolution)
        ys = torch.linspace(float(low[1] - pad[1]), float(high[1] + pad[1]), resolution)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
        values = self.critic(grid.to(self.device)).reshape(resolution, resolution).cpu()
        return xs.numpy(), ys.numpy(), values.numpy()

    # -- the loop ----------------------------------------------------------------------------------
    def _accumulate(self, stats: dict) -> None:
        for key, value in stats.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1

    def train(self, until: int | None = None) -> dict:
        """Runs to ``config.steps`` generator steps and returns the final summary.

        It stops early, with a checkpoint, at ``until`` steps, at ``config.max_seconds``, or
        when ``stop_requested`` is set (a signal handler sets it; the step in flight finishes).
        A non-finite loss or parameter rolls back to the last good state with halved learning
        rates (``config.on_nonfinite``), or raises :class:`NonFiniteError`.
        """
        config = self.config
        last = config.steps if until is None else min(until, config.steps)
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm
            bar = tqdm(total=config.steps, initial=self.step, desc=f"{config.preset} on {config.data}",
                       unit="step", dynamic_ncols=True)
        if self._good_state is None:
            self._good_state = self._snapshot()
        started = time.perf_counter() - self.elapsed
        try:
            while self.step < last:
                try:
                    stopping = self._one_step(started, last, bar)
                except NonFiniteError as error:
                    if not self._roll_back(error):
                        raise
                    continue
                if stopping:
                    break
        finally:
            if bar is not None:
                bar.close()
        self.elapsed = time.perf_counter() - started
        summary = self.summary()
        for callback in self.callbacks:
            if hasattr(callback, "on_end"):
                callback.on_end(self, summary)
        return summary

    def _one_step(self, started: float, last: int, bar) -> bool:
        """One generator step with its critic steps, and the logging due after it; True to stop."""
        config = self.config
        self.update_rule.iteration(self, self._accumulate)
        for schedule in self.schedules:
            schedule.step()
        self.step += 1
        if bar is not None:
            bar.update(1)
        out_of_time = bool(config.max_seconds) and time.perf_counter() - started >= config.max_seconds
        # stop_reason: a callback asked to stop (the doctor's --strict)
        stopping = out_of_time or self.stop_requested or self.stop_reason is not None or self.step >= last
        at_end = self.step == config.steps or stopping
        self.elapsed = time.perf_counter() - started
        if self.step % config.log_every == 0 or at_end:
            record = self._log_train()
            if bar is not None:
                bar.set_postfix(self._postfix(record), refresh=False)
        if at_end or (config.eval_every and self.step % config.eval_every == 0):
            self.last_eval = self._log_eval()
            if bar is not None:
                bar.set_postfix(self._postfix(self.last_train or {}), refresh=True)
        checkpoint_due = (self.step % config.checkpoint_every == 0) if config.checkpoint_every else \
            (at_end or (config.eval_every and self.step % config.eval_every == 0))
        if checkpoint_due or at_end:
            self.checkpoint()
        self.interrupted = self.stop_requested
        return stopping

    def _all_finite(self) -> bool:
        params = [p for net in (self.generator, self.critic) for p in net.parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def checkpoint(self) -> None:
        """Remembers the state as the last good one and, on rank 0 of a run with a folder, saves it.

        A state with a NaN or Inf parameter is never saved: it raises :class:`NonFiniteError`.
        """
        if not self._all_finite():
            raise NonFiniteError(f"a parameter became NaN or Inf before step {self.step}")
        self._good_state = self._snapshot()
        if self.run is not None and self.rank == 0:
            self.run.save_checkpoint(self.state_dict(), self.sampler.state_dict(), keep=self.config.keep_checkpoints)

    def _snapshot(self) -> dict:
        return copy.deepcopy({k: v for k, v in self.state_dict().items() if k != "history"})

    def _roll_back(self, error: NonFiniteError) -> bool:
        """Restores the last good state with halved learning rates; False when not allowed."""
        config = self.config
        if config.on_nonfinite != "rollback" or self.rollbacks >= config.max_rollbacks or self._good_state is None:
            return False
        bad_step, rollbacks, lr_scale = self.step, self.rollbacks + 1, self.lr_scale * 0.5
        self._load(copy.deepcopy(self._good_state))
        self.rollbacks, self.lr_scale = rollbacks, lr_scale
        self._apply_lr_scale()
        record = {"kind": "rollback", "step": self.step, "from_step": bad_step, "lr_scale": self.lr_scale,
                  "reason": str(error)}
        if self.rank == 0:
            print(f"wganlab: {error}; rolled back to step {self.step} with learning rates x{self.lr_scale:g} "
                  f"(rollback {self.rollbacks} of {config.max_rollbacks})", file=sys.stderr)
        self._emit(record)
        return True

    def _apply_lr_scale(self) -> None:
        for schedule, base in zip(self.schedules, (self.config.lr_g, self.config.lr_d)):
            schedule.base_lrs = [base * self.lr_scale]
            factor = schedule.lr_lambdas[0](schedule.last_epoch)
            for group in schedule.optimizer.param_groups:
                group["lr"] = base * self.lr_scale * factor

    def _postfix(self, record: dict) -> dict:
        shown = {}
        if "w_estimate" in record:
            shown["W"] = f"{record['w_estimate']:.3f}"
        if self.last_eval:
            if "modes_captured" in self.last_eval:
                shown["modes"] = f"{self.last_eval['modes_captured']}/{self.last_eval['n_modes']}"
            if "high_quality_fraction" in self.last_eval:
                shown["hq"] = f"{100 * self.last_eval['high_quality_fraction']:.0f}%"
            if "w1" in self.last_eval:
                shown["W1"] = f"{self.last_eval['w1']:.3f}"
            for key, label in (("fid", "FID"), ("classes_covered", "classes")):
                if key in self.last_eval:
                    shown[label] = f"{self.last_eval[key]:.3g}"
        return shown

    def _log_train(self) -> dict:
        # The interval's statistics (each the mean over the critic or generator steps since the
        # last line), the current gradient norms and a parameter finiteness flag come to the
        # host in one read.
        sums, counts = self._sums, self._counts
        means = {name: sums[name].float().reshape(()) / counts[name] for name in sums}
        means["grad_norm_g"] = _grad_norm(self.generator).to(self.device)
        means["grad_norm_d"] = _grad_norm(self.critic).to(self.device)
        params = [p for net in (self.generator, self.critic) for p in net.parameters()]
        means["params_finite"] = torch.stack([torch.isfinite(p).all() for p in params]).all().float()
        means.update(self._diagnostics())
        values = torch.stack(list(means.values())).cpu()
        self._sums, self._counts = {}, {}
        record = {"kind": "train", "step": self.step, "time": round(self.elapsed, 3)}
        record.update(zip(means, values.tolist()))
        params_finite = record.pop("params_finite")
        record["w_estimate"] = self.wasserstein_estimate()
        record["lr_g"] = self.opt_g.param_groups[0]["lr"]
        self._emit(record)  # before the check: the non-finite line is evidence for the doctor
        if not params_finite:
            raise NonFiniteError(f"a parameter became NaN or Inf by step {self.step}; lower the learning rates "
                                 f"(--lr-g/--lr-d) or use a Lipschitz constraint")
        for name in ("d_loss", "g_loss", "w_estimate"):
            if not math.isfinite(record[name]):
                raise NonFiniteError(f"{name} became {record[name]} at step {self.step}; lower the learning rates "
                                     f"(--lr-g/--lr-d) or use a Lipschitz constraint")
        self.last_train = record
        return record

    def _diagnostics(self, n: int = 256) -> dict:
        """Device tensors the doctor reads, measured on fixed held-out points once per log line:
        parameter norms, the generated samples' spread relative to the data's (mean pairwise
        distance ratio; ~1 healthy, -> 0 under collapse) and the critic's input-gradient norms at
        real-fake interpolates (the share above 1.5 shows a Lipschitz violation)."""
        from wganlab.core.constraints import critic_input_gradient_norms

        n = min(n, len(self.held_real))  # config.held_out may be smaller
        real = self.held_real[:n]
        fake = self._generate(self.held_z[:n])
        stats = {
            "param_norm_g": torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in self.generator.parameters()])),
            "param_norm_d": torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in self.critic.parameters()])),
            "sample_spread": torch.pdist(fake.flatten(1)).mean() / torch.pdist(real.flatten(1)).mean().clamp_min(1e-12),
        }
        # Fixed interpolation weights: the measurement must not draw from the training stream.
        eps = torch.rand(n, *([1] * (real.dim() - 1)), generator=torch.Generator().manual_seed(self.config.seed))
        points = (eps.to(self.device) * real + (1 - eps.to(self.device)) * fake).requires_grad_(True)
        with torch.enable_grad():
            norms = critic_input_gradient_norms(self.critic, points, create_graph=False)
        stats["input_grad_norm"] = norms.mean()
        stats["lipschitz_over_1_5"] = (norms > 1.5).float().mean()
        return stats

    def _log_eval(self) -> dict:
        result = self.evaluate()
        record = {"kind": "eval", "step": self.step, "time": round(self.elapsed, 3), **result}
        self._emit(record)
        return result

    def _emit(self, record: dict) -> None:
        self.history.append(record)
        if self.run is not None and self.rank == 0:
            self.run.append_metrics(record)
        for callback in self.callbacks:
            if hasattr(callback, "on_record"):
                callback.on_record(self, record)

    def summary(self) -> dict:
        final = dict(self.last_eval or self.evaluate())
        if self.last_train is not None:
            final["w_estimate"] = self.last_train["w_estimate"]
        final.update(steps=self.step, wall_seconds=round(self.elapsed, 2), preset=self.config.preset,
                     data=self.config.data, seed=self.config.seed)
        if self.stop_reason is not None:
            final["stopped"] = self.stop_reason
        return final

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything an exact resume needs; loadable with ``torch.load(weights_only=True)``."""
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "config": self.config.to_dict(),
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedules": [s.state_dict() for s in self.schedules],
            "objective": self.objective.equilibrium.state_dict() if self.objective.equilibrium else None,
            "update_rule": self.update_rule.state_dict(),
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_state_to_torch(np.random.get_state()),
            "python_rng": random.getstate(),
            "pending_sums": dict(self._sums),
            "pending_counts": dict(self._counts),
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "last_eval": self.last_eval,
            "last_train": self.last_train,
        }

    # what must match between a checkpoint's config and the run resuming it
    _ARCHITECTURE_KEYS = ("objective", "constraint", "optimizer", "update_rule", "latent_dim", "hidden", "depth",
                          "generator_batch_norm", "critic_norm", "net", "data", "ema")

    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`; refuses one from another architecture with a clear error."""
        saved = state.get("config", {})
        differing = [k for k in self._ARCHITECTURE_KEYS if k in saved and saved[k] != getattr(self.config, k)]
        if differing:
            detail = ", ".join(f"{k} {saved[k]!r} vs {getattr(self.config, k)!r}" for k in differing)
            raise CheckpointMismatchError(f"the checkpoint comes from another architecture or objective ({detail}); "
                                          f"resume with "
                                          f"the run's own config, or start a new run")
        try:
            self._load(state)
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointMismatchError(f"the checkpoint does not fit this run's networks ({first[:200]}); "
                                          f"it comes from another architecture") from None
        self._good_state = self._snapshot()

    def _load(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for schedule, saved in zip(self.schedules, state["schedules"]):
            schedule.load_state_dict(saved)
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(_numpy_state_from_torch(state["numpy_rng"]))
        random.setstate(state["python_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self._sums = {k: v.to(self.device) for k, v in state.get("pending_sums", {}).items()}
        self._counts = dict(state.get("pending_counts", {}))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.rollbacks = int(state.get("rollbacks", 0))
        self.last_eval = state.get("last_eval")
        self.last_train = state.get("last_train")
        if self.objective.equilibrium is not None:
            self.objective.equilibrium.load_state_dict(state["objective"])
        self.update_rule.load_state_dict(state["update_rule"])
