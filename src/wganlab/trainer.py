"""The training loop: it owns the networks, the optimisers and the schedule.

One loop serves every objective x constraint: a critic phase run ``n_critic`` times, then a
generator phase. Objectives and constraints are pure pieces (see ``objectives`` and
``constraints``); the loop never branches on their names.

Hot-loop statistics stay on the device and are read (one host sync) every ``log_every``
steps, when a line is appended to ``metrics.jsonl``.
"""

from __future__ import annotations

import math
import random
import time

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from wganlab.config import TrainConfig, validate
from wganlab.constraints import make_constraint
from wganlab.data.toy import make_toy
from wganlab.metrics import evaluate_toy
from wganlab.nets import mlp_critic, mlp_generator
from wganlab.objectives import get_objective
from wganlab.runfolder import RunFolder

HELD_OUT = 1024  # samples in the fixed held-out batch for the critic's Wasserstein estimate


def build_generator(config: TrainConfig, data_dim: int) -> torch.nn.Module:
    return mlp_generator(config.latent_dim, data_dim, config.hidden, config.depth, config.generator_batch_norm)


def build_critic(config: TrainConfig, data_dim: int) -> torch.nn.Module:
    return mlp_critic(data_dim, config.hidden, config.depth)


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


class Trainer:
    """Trains one GAN from a validated :class:`TrainConfig`.

    Args:
        config: the run's config.
        run: where to write; None trains without writing anything (tests, sweeps).
        progress: show a progress bar with the live figures.
        callbacks: observers of the metric stream (a doctor, TensorBoard, a live view): any
            object with an optional ``on_record(trainer, record)``, called for every train
            and eval record as it is written, and ``on_end(trainer, summary)``.
    """

    def __init__(self, config: TrainConfig, run: RunFolder | None = None, progress: bool = False,
                 callbacks=()):
        self.config = validate(config)
        self.run = run
        self.progress = progress
        self.callbacks = list(callbacks)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but torch sees no CUDA GPU; use --device cpu")

        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        # One stream for everything the loop draws (data, noise, interpolation weights), so a
        # seed fixes the run whatever else touches the global RNG.
        self.rng = torch.Generator().manual_seed(config.seed)

        self.dataset = make_toy(config.data, radius=config.radius, sigma=config.sigma, spacing=config.spacing)
        dim = self.dataset.dim
        self.generator = build_generator(config, dim).to(self.device)
        self.critic = build_critic(config, dim).to(self.device)
        self.ema = None
        if config.ema > 0:
            self.ema = AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)

        self.objective = get_objective(config.objective)
        self.constraint = make_constraint(config.constraint, gp_weight=config.gp_weight, clip=config.clip)
        self.opt_g = _optimizer(config, self.generator.parameters(), config.lr_g)
        self.opt_d = _optimizer(config, self.critic.parameters(), config.lr_d)
        self.schedules = [torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(config)) for opt in (self.opt_g, self.opt_d)]

        held_out = torch.Generator().manual_seed(config.seed + 1_000_003)
        self.held_real = self.dataset.sample(HELD_OUT, generator=held_out).to(self.device)
        self.held_z = torch.randn(HELD_OUT, config.latent_dim, generator=held_out).to(self.device)

        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.last_eval: dict | None = None
        self.last_train: dict | None = None

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
        """(n, D) samples of the reported generator from a seeded noise draw, on the CPU."""
        z = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self._generate(z.to(self.device)).float().cpu()

    # -- the two phases ----------------------------------------------------------------------
    def critic_step(self) -> dict:
        batch = self.config.batch_size
        real = self._real(batch)
        with _autocast(self.config, self.device):
            with torch.no_grad():
                fake = self.generator(self._noise(batch)).float()
            # One forward over real and fake: the critic has no batch statistics, so this is the
            # same function as two forwards, at one kernel launch per layer instead of two.
            scores = self.critic(torch.cat([real, fake])).float()
            losses = self.objective.critic(scores[:batch], scores[batch:])
            penalty, penalty_stats = self.constraint.penalty(self.critic, real, fake, self.rng)
        self.opt_d.zero_grad(set_to_none=True)
        (losses.total + penalty).backward()
        self.opt_d.step()
        projection_stats = self.constraint.project(self.critic)
        return {"d_loss": losses.total.detach(), "d_real": losses.real.detach(), "d_fake": losses.fake.detach(),
                **penalty_stats, **projection_stats}

    def generator_step(self) -> dict:
        self.critic.requires_grad_(False)  # no critic parameter gradients in the generator phase
        try:
            with _autocast(self.config, self.device):
                fake = self.generator(self._noise(self.config.batch_size))
                loss = self.objective.generator(self.critic(fake).float())
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        if self.ema is not None:
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
    def train(self) -> dict:
        """Runs to ``config.steps`` generator steps (or ``max_seconds``) and returns the final summary."""
        config = self.config
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=config.steps, initial=self.step, desc=f"{config.preset} on {config.data}",
                       unit="step", dynamic_ncols=True)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}

        def accumulate(stats: dict) -> None:
            for key, value in stats.items():
                sums[key] = sums[key] + value if key in sums else value
                counts[key] = counts.get(key, 0) + 1

        started = time.perf_counter() - self.elapsed
        try:
            while self.step < config.steps:
                for _ in range(config.n_critic):
                    accumulate(self.critic_step())
                accumulate(self.generator_step())
                for schedule in self.schedules:
                    schedule.step()
                self.step += 1
                if bar is not None:
                    bar.update(1)
                out_of_time = bool(config.max_seconds) and time.perf_counter() - started >= config.max_seconds
                at_end = self.step == config.steps or out_of_time
                if self.step % config.log_every == 0 or at_end:
                    self.elapsed = time.perf_counter() - started
                    record = self._log_train(sums, counts)
                    sums.clear()
                    counts.clear()
                    if bar is not None:
                        bar.set_postfix(self._postfix(record), refresh=False)
                if at_end or (config.eval_every and self.step % config.eval_every == 0):
                    self.elapsed = time.perf_counter() - started
                    self.last_eval = self._log_eval()
                    if bar is not None:
                        bar.set_postfix(self._postfix(self.last_train or {}), refresh=True)
                if out_of_time:
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

    def _postfix(self, record: dict) -> dict:
        shown = {}
        if "w_estimate" in record:
            shown["W"] = f"{record['w_estimate']:.3f}"
        if self.last_eval:
            if "modes_captured" in self.last_eval:
                shown["modes"] = f"{self.last_eval['modes_captured']}/{self.last_eval['n_modes']}"
                shown["hq"] = f"{100 * self.last_eval['high_quality_fraction']:.0f}%"
            shown["W1"] = f"{self.last_eval['w1']:.3f}"
        return shown

    def _log_train(self, sums: dict, counts: dict) -> dict:
        # The interval's statistics (each the mean over the critic or generator steps since the
        # last line) and the current gradient norms come to the host in one read.
        means = {name: sums[name].float().reshape(()) / counts[name] for name in sums}
        means["grad_norm_g"] = _grad_norm(self.generator).to(self.device)
        means["grad_norm_d"] = _grad_norm(self.critic).to(self.device)
        values = torch.stack(list(means.values())).cpu()
        record = {"kind": "train", "step": self.step, "time": round(self.elapsed, 3)}
        record.update(zip(means, values.tolist()))
        record["w_estimate"] = self.wasserstein_estimate()
        record["lr_g"] = self.opt_g.param_groups[0]["lr"]
        for name in ("d_loss", "g_loss", "w_estimate"):
            if not math.isfinite(record[name]):
                raise NonFiniteError(f"{name} became {record[name]} at step {self.step}; lower the learning rates "
                                     f"(--lr-g/--lr-d) or use a Lipschitz constraint")
        self._emit(record)
        self.last_train = record
        return record

    def _log_eval(self) -> dict:
        result = self.evaluate()
        record = {"kind": "eval", "step": self.step, "time": round(self.elapsed, 3), **result}
        self._emit(record)
        if self.run is not None:
            self.run.save_checkpoint(self)
        return result

    def _emit(self, record: dict) -> None:
        self.history.append(record)
        if self.run is not None:
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
        return final

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
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
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }

