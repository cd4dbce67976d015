"""sensitivity: the best runs of each objective are close; how often they succeed is not.

Lucic et al. 2018 ("Are GANs Created Equal?") trained every GAN variant on the same
networks over the same hyperparameter search with several seeds, and found that with
enough search most variants reach similar best scores, and that they differ in how many
settings work. Here, on ring8: for each preset (its objective and constraint) the same
nets (3x64 MLPs, latent 2, batch 128), the same schedule (the 2D default's generator EMA
0.99 and linear learning-rate decay over the second half: without them no run of any
preset holds 90% of its samples within 3 sigma at CPU lengths) and the same grid of 16
settings, learning rate (4 values) x Adam beta1 (2) x n_critic (2), over 3 seeds: 48 runs
a preset, trained stacked by ``wganlab sweep`` (Adam throughout, as in the paper's search).
A run *succeeds* with 8/8 modes and >= 90% high-quality samples (PacGAN protocol); its W1
is the exact optimal-transport distance.

The checks: every preset's best run succeeds (the runs are long enough to test the
claim), the best W1 of every preset within a factor 2 of the overall best (the best runs
are close), and the success rates or W1 spreads differing between presets (the robustness
differs).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from wganlab.config import PRESETS as SHIPPED_PRESETS
from wganlab.config import resolve
from wganlab.experiments.base import check, final_metrics, pyplot, register, result, save_figure


def grid(quick: bool) -> dict:
    if quick:
        return {"presets": ("gan", "wgan-gp-2d"), "lr": (2e-4, 8e-4), "n_critic": (1, 3), "beta1": (0.5,),
                "seeds": (0,), "steps": 150, "hidden": 32, "batch": 64}
    return {"presets": PRESETS, "lr": (1e-4, 3e-4, 1e-3, 3e-3),
            "n_critic": (1, 5), "beta1": (0.5, 0.9), "seeds": (0, 1, 2), "steps": STEPS, "hidden": 64, "batch": 128}


# the presets whose best setting meets the success bar at this length: two classifier games and a
# Wasserstein one (the authors' toy lambda 0.1); 144 runs stacked take ~7 minutes on 2 cores (~2.3 a preset).
# Measured and left out (2026-12-04, the same grid, 2,000 steps): gan (minimax), best run 8/8 but 76.6% high
# quality, and wgan (clipping c 0.01 under Adam), best 7/8 and 2.4%: no setting succeeds, so their rows
# could not test the claim (docs/experiments.md)
PRESETS = ("ns-gan", "lsgan", "wgan-gp-toy")
# long enough for the best setting of every preset to meet the success bar (measured: see docs/experiments.md)
STEPS = 2000
SCHEDULE = {key: SHIPPED_PRESETS["wgan-gp-2d"][key] for key in ("ema", "lr_decay_fraction")}


def grid_configs(g: dict) -> tuple[list[dict], list]:
    """The grid's settings and their configs, in order (the sweep equivalence test trains these)."""
    settings = []
    for preset in g["presets"]:
        for lr, n_critic, beta1, seed in itertools.product(g["lr"], g["n_critic"], g["beta1"], g["seeds"]):
            settings.append({"preset": preset, "lr": lr, "n_critic": n_critic, "beta1": beta1, "seed": seed})
    # the same nets and optimiser for every preset (Lucic et al.'s protocol): only the objective,
    # the constraint and its weight come from the preset
    # one departure shared by every preset: the 2D default's generator EMA and learning-rate decay
    shared = dict(data="ring8", optimizer="adam", latent_dim=2, depth=3, generator_batch_norm=False, **SCHEDULE,
                  steps=g["steps"], hidden=g["hidden"], batch_size=g["batch"],
                  log_every=g["steps"], eval_every=0, eval_samples=2500, w1_samples=500)
    configs = [resolve(s["preset"], dict(shared, lr_g=s["lr"], lr_d=s["lr"], n_critic=s["n_critic"], beta1=s["beta1"],
                                         seed=s["seed"])) for s in settings]
    return settings, configs


@register("sensitivity", "a grid of learning rate x n_critic x beta1 x seeds per preset on ring8: "
                         "success rate and the spread of W1", seconds=859)
def run(quick: bool, out: Path) -> dict:
    g = grid(quick)
    settings, configs = grid_configs(g)
    summaries = final_metrics(configs)  # stacked by wganlab.training.sweep where it can (Adam runs)
    runs = [{**s, "modes": m["modes_captured"], "high_quality": m["high_quality_fraction"], "w1": m["w1"],
             "success": m["modes_captured"] == m["n_modes"] and m["high_quality_fraction"] >= 0.9}
            for s, m in zip(settings, summaries)]

    table = {}
    for preset in g["presets"]:
        mine = [r for r in runs if r["preset"] == preset]
        w1 = np.array([r["w1"] for r in mine])
        table[preset] = {"runs": len(mine), "success_rate": float(np.mean([r["success"] for r in mine])),
                         "best_w1": float(w1.min()), "median_w1": float(np.median(w1)), "worst_w1": float(w1.max()),
                         "w1_iqr": float(np.percentile(w1, 75) - np.percentile(w1, 25)),
                         "best_setting": min(mine, key=lambda r: r["w1"])}
    bests = {p: t["best_w1"] for p, t in table.items()}
    overall = min(bests.values())
    rates = [t["success_rate"] for t in table.values()]
    spreads = {p: t["median_w1"] / t["best_w1"] for p, t in table.items()}
    checks = [
        check("runs that succeed with each preset's best setting (by W1)",
              {p: t["best_setting"]["success"] for p, t in table.items()},
              all(t["best_setting"]["success"] or t["success_rate"] > 0 for t in table.values()),
              "every preset succeeds at least once: otherwise the runs are too short to test the claim"),
        check("largest best W1 of a preset / overall best W1", max(bests.values()) / overall,
              max(bests.values()) < 2 * overall, "the best runs are close: < 2"),
        check("success rates (max - min) and median/best W1 ratios (max / min) across presets",
              [max(rates) - min(rates), max(spreads.values()) / min(spreads.values())],
              max(rates) - min(rates) >= 0.25 or max(spreads.values()) > 2 * min(spreads.values()),
              "robustness differs: success rates differ by >= 25 points, or the W1 spreads by > 2x"),
    ]

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    presets = list(g["presets"])
    data = [[r["w1"] for r in runs if r["preset"] == p] for p in presets]
    axes[0].boxplot(data, showfliers=True)
    axes[0].set_xticks(range(1, len(presets) + 1), presets)
    for i, values in enumerate(data, start=1):
        axes[0].scatter(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, s=10, alpha=0.6)
    axes[0].set(ylabel="exact W1 (lower is better)", yscale="log",
                title=f"W1 over the grid ({len(runs)} runs, {g['steps']} steps each)")
    axes[1].bar(presets, [100 * t["success_rate"] for t in table.values()])
    axes[1].set(ylabel="% of grid runs with 8/8 modes and >= 90% high quality", ylim=(0, 100), title="success rate")
    plots = [save_figure(fig, out, "sensitivity.png")]

    figures = {"grid": {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}, "table": table, "runs": runs}
    claim = ("Over a grid of learning rate x n_critic x beta1 x seeds on ring8, the best run of every preset reaches "
             "a similar W1, while the presets differ in how many settings succeed.")
    protocol = ("Lucic et al. 2018, Section 5: every variant on the same networks and the same hyperparameter "
                "search (learning rate, Adam beta1, discriminator steps), several seeds per setting, the best and "
                "the distribution of the score per variant; here the score is the exact W1 and the PacGAN mode "
                "protocol on ring8.")
    scaled = (f"a grid of {len(g['lr']) * len(g['n_critic']) * len(g['beta1'])} settings x {len(g['seeds'])} seeds "
              f"per preset against the paper's 100 sampled settings x 50 seeds on images; {g['steps']} steps; ring8 "
              f"for MNIST/CIFAR/CelebA and the W1 for the FID; {g['hidden']}-unit MLPs, batch {g['batch']}; one "
              f"departure shared by every preset: the 2D default's generator EMA {SCHEDULE['ema']} and linear lr "
              f"decay over the last {SCHEDULE['lr_decay_fraction']:.0%} of steps (the paper has neither), without "
              "which no run reaches the success bar at these lengths.")
    return result(claim, checks, figures, plots, protocol=protocol, scaled=scaled)
