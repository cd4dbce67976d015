"""Many small GANs in one process: K runs trained in lockstep with stacked weights.

``run_sweep`` trains every combination of seeds x hyperparameter values. Runs that share
their shapes and schedule are stacked (``torch.func.stack_module_state``) and each phase is
one ``vmap``-ed call over all of them, so K small nets cost a few large batched matmuls
instead of K sets of small ones.

Each run is the run ``Trainer`` would train from the same config:

* the nets are built under ``torch.manual_seed(seed)``, generator first, as the trainer does;
* each run draws its real data, noise and interpolation weights from its own
  ``torch.Generator(seed)`` in the trainer's order (real, noise, eps per critic step; noise
  per generator step), so the runs see the same streams as K separate trainers would;
* Adam is written functionally over the stacked parameters with per-run learning rates and
  betas (the same update as ``torch.optim.Adam``), the EMA is a per-run lerp as
  ``AveragedModel`` with ``get_ema_multi_avg_fn`` does (decay 0 is the generator itself), and
  the learning-rate schedule is the trainer's;
* the gradient penalty draws one weight per sample per run and takes the input gradient per
  run (``torch.func.grad`` inside ``vmap``);
* each run is scored as the trainer scores it (same seeded samples, same metrics).

The losses agree with sequential trainers up to float rounding, which Adam amplifies in
near-zero gradient components to O(lr) parameter differences (``tests/test_sweep.py``).
"""

from __future__ import annotations

import copy
import itertools
import time
from typing import Any, Iterable, Sequence

import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from wganlab.config import ConfigError, TrainConfig, from_dict
from wganlab.core.constraints import clip_stacked_parameters, gradient_norms, two_sided_penalty, two_sided_penalty_grad
from wganlab.core.critic_gradients import mlp_layers
from wganlab.core.schedules import linear_decay
from wganlab.data import DATASETS, make_dataset
from wganlab.metrics.toy import evaluate_toy
from wganlab.training import step as steps
from wganlab.training.build import (build_critic, build_generator, held_out_batch,
                                    keep_freed_memory_for_reuse, objective_of)

# Keys that may differ between the runs of one stacked group: they change no shape and no
# schedule. Runs that differ in any other key go to separate groups.
PER_RUN_KEYS = ("seed", "lr_g", "lr_d", "beta1", "beta2", "gp_weight", "clip", "ema")
_ADAM_EPS = 1e-8  # torch.optim.Adam's default


def sweep_configs(base: TrainConfig, seeds: Sequence[int] = (0,), grid: dict[str, Sequence[Any]] | None = None
                  ) -> list[TrainConfig]:
    """The configs of seeds x every combination of ``grid`` values, in that order, each validated."""
    grid = dict(grid or {})
    unknown = sorted(set(grid) - set(base.to_dict()))
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {', '.join(unknown)}; valid keys: {', '.join(base.to_dict())}")
    if "seed" in grid:
        raise ConfigError("give seeds with seeds=/--seeds, not in the grid")
    if not seeds:
        raise ConfigError("a sweep needs at least one seed")
    keys = list(grid)
    configs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        for seed in seeds:
            configs.append(from_dict({**base.to_dict(), **dict(zip(keys, values)), "seed": seed}))
    return configs


def _check_supported(config: TrainConfig) -> None:
    if config.optimizer != "adam":
        raise ConfigError(f"sweep trains with Adam only, got optimizer {config.optimizer!r}; use wganlab train for it")
    if config.generator_batch_norm:
        raise ConfigError("sweep cannot stack BatchNorm generators (running statistics are state); "
                          "set generator_batch_norm=false or use wganlab train")
    if config.precision != "fp32":
        raise ConfigError(f"sweep runs in fp32 only, got precision {config.precision!r}; add --precision fp32")
    if config.lr_decay_clock == "budget" and config.max_seconds:
        raise ConfigError("sweep plans the learning-rate decay on steps; with --max-seconds set lr_decay_clock=steps "
                          "(or train the run with wganlab train)")
    if config.ema and (config.ema_warmup or config.ema_start):
        raise ConfigError("sweep averages with a fixed EMA decay; drop ema_warmup and ema_start or use wganlab train")
    if config.pack != 1:
        raise ConfigError(f"sweep does not stack packed critics (pack {config.pack}); use wganlab train for pack > 1")
    # what the stacked loop implements; anything else would be trained as something it is not
    if config.constraint not in ("none", "gradient-penalty", "clip"):
        raise ConfigError(f"sweep stacks the constraints none, gradient-penalty and clip, got {config.constraint!r}; "
                          f"use wganlab train for it")
    if config.update_rule != "alternating" or config.unroll_steps:
        raise ConfigError("sweep runs the alternating update rule only; use wganlab train for "
                          f"update_rule={config.update_rule!r}, unroll_steps={config.unroll_steps}")
    objective = objective_of(config)
    if objective.critic_kind != "score" or objective.equilibrium:
        raise ConfigError(f"sweep cannot stack the {config.objective!r} objective (a critic with state of its own); "
                          f"use wganlab train for it")
    if objective.generator_needs_real:
        raise ConfigError(f"sweep cannot stack the {config.objective!r} objective (its generator loss reads real "
                          f"scores); use wganlab train for it")
    toy = [name for name, entry in DATASETS.items() if entry.kind == "toy"]
    if config.data not in toy:
        raise ConfigError(f"sweep trains on the built-in toy data ({', '.join(toy)}) only, got data {config.data!r}; "
                          f"use wganlab train for it")


def _structure(config: TrainConfig) -> tuple:
    return tuple((k, v) for k, v in sorted(config.to_dict().items()) if k not in PER_RUN_KEYS)


class _Adam:
    """Adam over stacked parameters (leading dim K) with per-run lr and betas, shapes (K,)."""

    def __init__(self, params: dict[str, torch.Tensor], lr, beta1, beta2):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.exp_avg = {k: torch.zeros_like(p) for k, p in params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(p) for k, p in params.items()}
        self.t = 0

    @torch.no_grad()
    def step(self, params: dict, grads: dict, factor: float) -> None:
        self.t += 1
        for name, p in params.items():
            view = (-1,) + (1,) * (p.dim() - 1)
            b1, b2, lr = self.beta1.view(view), self.beta2.view(view), self.lr.view(view) * factor
            g = grads[name]
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).add_((1 - b2) * g * g)
            bias1 = 1 - b1 ** self.t
            bias2 = 1 - b2 ** self.t
            p.sub_(lr / bias1 * m / (v.sqrt() / bias2.sqrt() + _ADAM_EPS))


def _train_group(configs: list[TrainConfig], keep_history: bool) -> list[dict]:
    keep_freed_memory_for_reuse()  # as the trainer

    first = configs[0]
    _check_supported(first)
    device = torch.device(first.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no CUDA GPU; use --device cpu")
    if first.threads:
        torch.set_num_threads(first.threads)
    dataset = make_dataset(first)
    objective = objective_of(first)
    k, batch, latent = len(configs), first.batch_size, first.latent_dim

    generators, critics = [], []
    for config in configs:
        torch.manual_seed(config.seed)
        generators.append(build_generator(config, dataset.dim))
        critics.append(build_critic(config, dataset.dim))
    g_params, _ = stack_module_state(generators)
    d_params, _ = stack_module_state(critics)
    g_params = {n: p.detach().to(device) for n, p in g_params.items()}
    d_params = {n: p.detach().to(device) for n, p in d_params.items()}
    g_template = copy.deepcopy(generators[0]).to("meta")
    d_template = copy.deepcopy(critics[0]).to("meta")
    ema_params = None

    def per_run(key: str) -> torch.Tensor:
        return torch.tensor([getattr(c, key) for c in configs], dtype=torch.float32, device=device)

    gp_weight, clip, ema_decay = per_run("gp_weight"), per_run("clip"), per_run("ema")
    opt_g = _Adam(g_params, per_run("lr_g"), per_run("beta1"), per_run("beta2"))
    opt_d = _Adam(d_params, per_run("lr_d"), per_run("beta1"), per_run("beta2"))
    rngs = [torch.Generator().manual_seed(c.seed) for c in configs]
    with_penalty = first.constraint == "gradient-penalty"

    def to_device(batch: torch.Tensor) -> torch.Tensor:
        if device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=True)

    def generate(params, z):
        return functional_call(g_template, params, (z,))

    def critic_loss(params, real, fake, eps, weight):
        def score(x):
            return functional_call(d_template, params, (x,))

        def penalty(score, real, fake):  # the gradient penalty at interpolates drawn before, per run
            if not with_penalty:
                return real.new_zeros(()), {}
            input_grad = grad(lambda x: score(x).sum())(eps * real + (1 - eps) * fake)
            norms = gradient_norms(input_grad)
            value = two_sided_penalty(norms, weight)
            return value, {"penalty": value, "gp_grad_norm": norms.mean()}

        terms = steps.critic_terms(objective, None, score, real, fake, penalty=penalty)
        losses = terms.losses
        return terms.total, {"d_loss": losses.total, "d_real": losses.real, "d_fake": losses.fake,
                             **terms.penalty_stats}

    def generator_loss(params, critic_params, z):
        loss = steps.generator_loss(objective, lambda x: functional_call(d_template, critic_params, (x,)),
                                    generate(params, z))
        return loss, loss

    generate_all = vmap(generate)
    plain_mlp = mlp_layers(critics[0])
    if plain_mlp is not None and first.critic_backward != "autograd":
        # The trainer's hand-written critic step over all K runs at once (batched matmuls; eager
        # under "compiled" too: the sweep's step is not compiled).
        layer_names = [name for name, _ in critics[0].named_children()][0::2]
        slopes = plain_mlp[1]

        def stacked_penalty(norms):
            values = two_sided_penalty(norms, gp_weight)
            return values.sum(), {"penalty": values, "gp_grad_norm": norms.mean(dim=1)}

        def critic_grads(params, real, fake, eps, weight):
            step = steps.hand_written_critic_gradients(
                objective, [params[f"{n}.weight"] for n in layer_names], [params[f"{n}.bias"] for n in layer_names],
                slopes, real, fake, eps if with_penalty else None, stacked_penalty if with_penalty else None,
                lambda norms: two_sided_penalty_grad(norms, gp_weight))
            grads = {}
            for name, weight_grad, bias_grad in zip(layer_names, step.weight_grads, step.bias_grads):
                grads[f"{name}.weight"], grads[f"{name}.bias"] = weight_grad, bias_grad
            return grads, {**step.loss_stats, **step.penalty_stats}
    else:
        critic_grads = vmap(grad(critic_loss, has_aux=True))
    generator_grads = vmap(grad(generator_loss, has_aux=True))

    histories: list[list[dict]] = [[] for _ in configs]
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def accumulate(stats: dict) -> None:
        for key, value in stats.items():
            sums[key] = sums[key] + value.detach() if key in sums else value.detach()
            counts[key] = counts.get(key, 0) + 1

    started = time.perf_counter()
    step = 0
    schedule = linear_decay(first.steps, first.lr_decay_fraction)  # the trainer's
    while step < first.steps:
        factor = schedule(step)
        # per run, the trainer's order of draws: real, noise, then the interpolation weights,
        # for all n_critic steps first; the generator does not change during the critic steps,
        # so their fake batches come from one forward (as the trainer's critic_phase)
        draws = []
        for _ in range(first.n_critic):
            real = to_device(torch.stack([dataset.sample(batch, generator=r) for r in rngs]))
            z = to_device(torch.stack([torch.randn(batch, latent, generator=r) for r in rngs]))
            eps = None
            if with_penalty:
                eps = to_device(torch.stack([torch.rand(batch, 1, generator=r) for r in rngs]))
            draws.append((real, z, eps))
        with torch.no_grad():
            fakes = generate_all(g_params, torch.cat([z for _, z, _ in draws], dim=1)).split(batch, dim=1)
        for (real, _, eps), fake in zip(draws, fakes):
            grads, stats = critic_grads(d_params, real, fake, eps if eps is not None else real[..., :1], gp_weight)
            opt_d.step(d_params, grads, factor)
            if first.constraint == "clip":
                stats["clipped_fraction"] = clip_stacked_parameters(d_params.values(), clip)
            accumulate(stats)
        z = to_device(torch.stack([torch.randn(batch, latent, generator=r) for r in rngs]))
        g_grads, g_loss = generator_grads(g_params, d_params, z)
        opt_g.step(g_params, g_grads, factor)
        accumulate({"g_loss": g_loss})
        with torch.no_grad():
            if ema_params is None:  # AveragedModel copies the weights at its first update
                ema_params = {n: p.clone() for n, p in g_params.items()}
            else:
                for n, p in g_params.items():
                    weight = (1 - ema_decay).view((-1,) + (1,) * (p.dim() - 1))
                    ema_params[n].lerp_(p, weight)
        step += 1
        out_of_time = bool(first.max_seconds) and time.perf_counter() - started >= first.max_seconds
        if keep_history and (step % first.log_every == 0 or step == first.steps or out_of_time):
            # one host read per log line, as the trainer
            means = {name: (sums[name] / counts[name]).cpu() for name in sums}
            for i in range(k):
                histories[i].append({"kind": "train", "step": step, **{n: float(v[i]) for n, v in means.items()}})
            sums.clear()
            counts.clear()
        if out_of_time:
            break
    loop_seconds = time.perf_counter() - started
    return _score(configs, dataset, g_template, d_template, g_params, d_params, ema_params, histories,
                  keep_history, step, loop_seconds, device)


def _score(configs, dataset, g_template, d_template, g_params, d_params, ema_params, histories, keep_history,
           steps, loop_seconds, device) -> list[dict]:
    rows = []
    sampler_params = ema_params if ema_params is not None else g_params
    for i, config in enumerate(configs):
        generator = {n: p[i] for n, p in sampler_params.items()}
        critic = {n: p[i] for n, p in d_params.items()}
        with torch.no_grad():
            z = torch.randn(config.eval_samples, config.latent_dim, generator=torch.Generator().manual_seed(config.seed))
            samples = functional_call(g_template, generator, (z.to(device),)).float().cpu()
            held_real, held_z = (t.to(device) for t in held_out_batch(dataset, config))  # the trainer's
            held_fake = functional_call(g_template, generator, (held_z,))
            w_estimate = float(functional_call(d_template, critic, (held_real,)).mean()
                               - functional_call(d_template, critic, (held_fake,)).mean())
        row = {key: getattr(config, key) for key in PER_RUN_KEYS}
        if torch.isfinite(samples).all():
            row.update(evaluate_toy(samples, dataset, n_real=config.w1_samples, seed=config.seed))
        else:
            row.update(modes_captured=None, high_quality_fraction=None, reverse_kl=None, w1=None, diverged=True)
        row.update(w_estimate=w_estimate, steps=steps, wall_seconds=round(loop_seconds / len(configs), 3),
                   preset=config.preset, data=config.data)
        if keep_history:
            row["history"] = histories[i]
        rows.append(row)
    return rows


def run_sweep(base: TrainConfig, seeds: Sequence[int] = (0,), grid: dict[str, Sequence[Any]] | None = None,
              *, keep_history: bool = False) -> list[dict]:
    """Trains every run of seeds x grid in one process and scores each as ``Trainer`` would.

    Args:
        base: the config every run starts from (its ``seed`` is replaced by ``seeds``).
        seeds: the seeds of each grid point.
        grid: config key -> values; every combination is run for every seed. Keys in
            :data:`PER_RUN_KEYS` are stacked into one vmapped group; any other key (hidden,
            n_critic, data...) splits the runs into groups trained one after another.
        keep_history: add each run's train records (means over every ``log_every`` steps of
            d_loss, d_real, d_fake, penalty, gp_grad_norm) under the key ``history``.
    Returns:
        One row per run, in the order seeds vary fastest within each grid point: the per-run
        keys of :data:`PER_RUN_KEYS`, the trainer's summary metrics (``modes_captured``,
        ``n_modes``, ``high_quality_fraction``, ``reverse_kl``, ``mode_counts``, ``w1``,
        ``w_estimate``), ``steps``, ``preset``, ``data``, and ``wall_seconds``: the group's
        loop time divided by its number of runs.
    """
    return train_configs(sweep_configs(base, seeds, grid), keep_history=keep_history)


def supports(config: TrainConfig) -> bool:
    """Whether ``run_sweep`` / ``train_configs`` can train this config (the conditions of
    ``_check_supported``); the others train with ``Trainer``."""
    try:
        _check_supported(config)
    except ConfigError:
        return False
    return True


def train_configs(configs: Sequence[TrainConfig], *, keep_history: bool = False) -> list[dict]:
    """Trains the given configs in one process, stacking those that share shapes and schedule,
    and returns their rows in order (see :func:`run_sweep` for the rows)."""
    for config in configs:
        _check_supported(config)
    groups: dict[tuple, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(_structure(config), []).append(index)
    rows: list[dict | None] = [None] * len(configs)
    for indices in groups.values():
        for index, row in zip(indices, _train_group([configs[i] for i in indices], keep_history)):
            rows[index] = row
    return rows  # type: ignore[return-value]


def parse_grid(items: Iterable[str]) -> dict[str, list[str]]:
    """``["lr_d=1e-4,2e-4", "gp_weight=0.1,1"]`` -> {"lr_d": ["1e-4", "2e-4"], "gp_weight": ["0.1", "1"]}."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values.strip():
            raise ConfigError(f"--grid expects key=v1,v2,..., got {item!r}")
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    return grid
