"""The training loop: it owns the networks, the optimisers and the schedule.

One loop serves every objective x constraint: a critic phase run ``n_critic`` times, then a
generator phase. Objectives and constraints are pure pieces (see ``objectives`` and
``constraints``); the loop never branches on their names.

Hot-loop statistics stay on the device and are read (one host sync) every ``log_every``
steps, when a line is appended to ``metrics.jsonl``.
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn

from wganlab.config import ConfigError, TrainConfig, validate
from wganlab.core.constraints import CONSTRAINTS, interpolation_weights
from wganlab.core.critic_gradients import mlp_layers
from wganlab.core.generator_gradients import generator_step_gradients, mlp_generator_layers
from wganlab.core.packing import PackedCritic, pack_samples
from wganlab.core.schedules import budget_decay, linear_decay
from wganlab.core.update_rules import make_update_rule
from wganlab.data import make_dataset
from wganlab.runs.folder import RunFolder
from wganlab.training.ema import GeneratorAverage, delayed, warmed_ema  # noqa: F401 (warmed_ema re-exported)
from wganlab.training import step
from wganlab.training.build import (autocast, build_critic, build_generator, check_memory, check_precision,
                                    constraint_of, held_out_batch, keep_freed_memory_for_reuse, make_optimizer,
                                    objective_of)
from wganlab.training.compiled import CompiledOrEager, not_compiled
from wganlab.training.distributed import rank_and_world_size
from wganlab.training.state import CheckpointMismatchError, NonFiniteError, TrainerState, rank_seed
from wganlab.training.telemetry import Telemetry

__all__ = ["CheckpointMismatchError", "NonFiniteError", "Trainer", "build_critic", "build_generator",
           "keep_freed_memory_for_reuse", "rank_seed"]


class Trainer(TrainerState, Telemetry):
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
        if self.local_batch % config.pack:
            raise ValueError(f"each of the {self.world_size} processes' batch of {self.local_batch} samples must be "
                             f"a multiple of pack {config.pack}; give a batch_size that is a multiple of "
                             f"{self.world_size * config.pack}")

        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        # One stream for everything the loop draws (data, noise, interpolation weights), so a
        # seed fixes the run whatever else touches the global RNG; each rank has its own.
        self.rng = torch.Generator().manual_seed(rank_seed(config.seed, self.rank))

        self.dataset = dataset if dataset is not None else make_dataset(config)
        check_memory(config, tuple(self.dataset.shape))  # before a byte of the nets is allocated
        check_precision(config, self.device)
        self.generator = build_generator(config, self.dataset.shape).to(self.device)
        self.critic = build_critic(config, self.dataset.shape).to(self.device)
        self.ema = None
        if config.ema > 0:
            average = warmed_ema(config.ema, config.ema_ramp) if config.ema_warmup else get_ema_multi_avg_fn(config.ema)
            average = delayed(average, config.ema_start)
            self.ema = GeneratorAverage(self.generator, multi_avg_fn=average, use_buffers=True)

        # Under torchrun the phases run through DDP wrappers, which average parameter gradients
        # over ranks; everything else (EMA, state, evaluation) uses the plain modules.
        self.critic_train, self.generator_train = self.critic, self.generator
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.critic_train = DistributedDataParallel(self.critic, device_ids=ids,
                                                        static_graph=config.ddp_static_graph)
            self.generator_train = DistributedDataParallel(self.generator, device_ids=ids)

        self.objective = objective_of(config)
        self.constraint = constraint_of(config)
        self._critic_layers = self._hand_written_critic()
        # K = 1 views of the hand-written critic's parameters: the optimiser updates them in
        # place and a load copies into them, so the views stay current
        self._critic_views = None if self._critic_layers is None else (
            [layer.weight.unsqueeze(0) for layer in self._critic_layers[0]],
            [layer.bias.unsqueeze(0) for layer in self._critic_layers[0]])
        self._critic_step = self._critic_step_function()
        self._generator_has_batch_statistics = any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.generator.modules())
        # the generator step by hand (core.generator_gradients) under the same conditions, fp32,
        # unpacked, for games whose generator loss reads only fake scores
        self._generator_layers = None if (self._critic_layers is None or config.precision != "fp32"
                                          or config.pack != 1 or self.objective.generator_needs_real) \
            else mlp_generator_layers(self.generator)
        self.opt_g = make_optimizer(config, self.generator.parameters(), config.lr_g)
        self.opt_d = make_optimizer(config, self.critic.parameters(), config.lr_d)
        self.schedules = [torch.optim.lr_scheduler.LambdaLR(opt, self._decay_factor())
                          for opt in (self.opt_g, self.opt_d)]
        self.update_rule = make_update_rule(config)
        self.update_rule.attach(self)

        held_real, held_z = held_out_batch(self.dataset, config)
        self.held_real, self.held_z = held_real.to(self.device), held_z.to(self.device)

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

    def draw_noise(self, n: int) -> torch.Tensor:
        """(n, latent_dim) noise from the run's stream, on the device."""
        return self._to_device(torch.randn(n, self.config.latent_dim, generator=self.rng))

    def draw_real(self, n: int) -> torch.Tensor:
        """(n, *shape) real samples from the run's stream, on the device."""
        return self._to_device(self.dataset.sample(n, generator=self.rng))

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """The reported generator on ``z``, in eval mode, leaving its mode as it was."""
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            return net(z)
        finally:
            net.train(was_training)

    # -- the two phases ----------------------------------------------------------------------
    def critic_step(self) -> dict:
        real, noise, eps = self._critic_draws()
        with autocast(self.config, self.device), torch.no_grad():
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
        with autocast(self.config, self.device), torch.no_grad():
            fakes = self.generator(torch.cat([noise for _, noise, _ in draws])).float().split(self.local_batch)
        return [self._critic_update(real, fake, eps) for (real, _, eps), fake in zip(draws, fakes)]

    def _critic_draws(self):
        """(real batch, noise, interpolation weights) of one critic step, in that order; the weights only
        for the hand-written step (the autograd path's penalty draws its own), else None."""
        real = self.draw_real(self.local_batch)
        noise = self.draw_noise(self.local_batch)
        if self._critic_layers is None or self.constraint.penalty_of_norms is None:
            return real, noise, None
        return real, noise, interpolation_weights(pack_samples(real, self.config.pack), self.rng)  # one per pack

    def _critic_update(self, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None) -> dict:
        pack = self.config.pack
        if self._critic_layers is not None:
            scores, losses, penalty_stats = self._critic_gradients_by_hand(pack_samples(real, pack),
                                                                          pack_samples(fake, pack), eps)
            self.opt_d.step()
            projection_stats = self.constraint.project(self.critic)
        else:
            with autocast(self.config, self.device):
                terms = step.critic_terms(self.objective, self.constraint, self.critic_train, real, fake, self.rng,
                                          pack=pack)
            scores, losses, penalty_stats = terms.scores, terms.losses, terms.penalty_stats
            projection_stats = step.critic_update(terms, self.constraint, self.critic, self.opt_d)
        return {"d_loss": losses.total.detach(), "d_real": losses.real.detach(), "d_fake": losses.fake.detach(),
                **self._accuracy(scores.detach(), self.local_batch // pack), **penalty_stats, **projection_stats,
                **self.objective.after_critic_step()}

    def _hand_written_critic(self):
        """(layers, slopes) when the critic step can take its gradients from ``core.critic_gradients`` (a
        plain MLP critic, one process, fp32 or bf16, no penalty or one at the interpolates), else None."""
        config = self.config
        if config.critic_backward == "autograd" or self.world_size > 1 or config.precision not in ("fp32", "bf16"):
            return None
        if CONSTRAINTS[self.constraint.name].adds_penalty and self.constraint.penalty_of_norms is None:
            return None
        return mlp_layers(self.critic.net if isinstance(self.critic, PackedCritic) else self.critic)

    def _critic_step_function(self):
        """(weights, biases, real, fake, eps) -> CriticStep by hand (``training.compiled``); None: autograd's."""
        if self._critic_layers is None:
            return not_compiled(self.config.critic_backward, self.rank == 0)
        slopes, objective, constraint = self._critic_layers[1], self.objective, self.constraint
        penalty = None if constraint.penalty_of_norms is None else lambda norms: constraint.penalty_of_norms(norms[0])
        dtype = torch.bfloat16 if self.config.precision == "bf16" else None

        def critic_step(weights, biases, real, fake, eps):
            return step.hand_written_critic_gradients(objective, weights, biases, slopes, real, fake, eps, penalty,
                                                      constraint.penalty_norm_grads, dtype, stacked=False)
        return CompiledOrEager(critic_step) if self.config.critic_backward == "compiled" else critic_step

    @torch.no_grad()
    def _critic_gradients_by_hand(self, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None):
        """Leaves the critic step's gradients in ``.grad``; returns (scores, losses, penalty stats)."""
        weights, biases = self._critic_views
        grads = self._critic_step(weights, biases, real.unsqueeze(0), fake.unsqueeze(0),
                                  None if eps is None else eps.unsqueeze(0))
        for layer, weight_grad, bias_grad in zip(self._critic_layers[0], grads.weight_grads, grads.bias_grads):
            layer.weight.grad, layer.bias.grad = weight_grad[0], bias_grad[0]
        return grads.scores[0], grads.loss_stats, grads.penalty_stats

    def critic_terms(self, score, real: torch.Tensor, fake: torch.Tensor) -> step.CriticTerms:
        """The run's critic loss (objective plus penalty) of ``score`` on (real, fake), from the run's stream."""
        return step.critic_terms(self.objective, self.constraint, score, real, fake, self.rng, pack=self.config.pack)

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
        if score is None and self._generator_layers is not None:
            loss = self._generator_step_by_hand()
        else:
            loss = self._generator_step_by_autograd(score)
        if self.ema is not None and update_ema:
            self.ema.update_parameters(self.generator)
        return {"g_loss": loss.detach()}

    def _generator_step_by_autograd(self, score) -> torch.Tensor:
        """The generator update through torch.autograd (``score`` or the critic); the loss."""
        self.critic.requires_grad_(False)  # no critic parameter gradients in the generator phase
        try:
            with autocast(self.config, self.device):
                fake = self.generator_train(self.draw_noise(self.local_batch))
                # a real batch only for games whose generator loss reads D(x) (RaGAN): the
                # other games' draw order stays as it was
                real = self.draw_real(self.local_batch) if self.objective.generator_needs_real else None
                loss = step.generator_loss(self.objective, score or self.critic, fake, real)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.critic.requires_grad_(True)
        return loss

    def _generator_step_by_hand(self) -> torch.Tensor:
        """The generator update with its gradients from ``core.generator_gradients``; the loss."""
        layers, (critic_layers, slopes) = self._generator_layers, self._critic_layers
        weight_grads, bias_grads, loss = generator_step_gradients(
            [layer.weight for layer in layers], [layer.bias for layer in layers],
            [layer.weight for layer in critic_layers], [layer.bias for layer in critic_layers], slopes,
            self.draw_noise(self.local_batch), lambda scores: self.objective.generator(scores, None))
        for layer, weight_grad, bias_grad in zip(layers, weight_grads, bias_grads):
            layer.weight.grad, layer.bias.grad = weight_grad, bias_grad
        self.opt_g.step()
        return loss

    def _decay_factor(self):
        """The learning rates' factor of the step (LambdaLR's lambda): by steps, or on the budget
        clock by steps or the share of ``max_seconds`` spent, whichever is further on."""
        config = self.config
        if config.lr_decay_clock != "budget" or not config.max_seconds:
            return linear_decay(config.steps, config.lr_decay_fraction)
        if self.world_size > 1:  # each rank would read its own clock and step with its own rate
            raise ConfigError("lr_decay_clock = budget under torchrun would give each process its own learning "
                              "rate; use lr_decay_clock = steps (or drop --max-seconds)")
        by_budget = budget_decay(config.steps, config.lr_decay_fraction, config.max_seconds)
        return lambda step: by_budget(step, getattr(self, "elapsed", 0.0))

    # -- the loop ----------------------------------------------------------------------------------
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

    def advance(self) -> None:
        """One generator step with its critic steps and the lr schedules' step: no logging, evaluation or checkpoint."""
        self.update_rule.iteration(self, self._accumulate)
        for schedule in self.schedules:
            schedule.step()
        self.step += 1

    def _one_step(self, started: float, last: int, bar) -> bool:
        """One generator step with its critic steps, and the logging due after it; True to stop."""
        config = self.config
        self.advance()
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
