"""mode-collapse: which objectives keep every mode of a mixture, and which hop between them.

Metz et al. 2017, Figure 1 and their 2D mixture set-up: a ring of 8 Gaussians, the
generator 2x128 ReLU on 256-D noise, the discriminator one ReLU layer of 128, the minimax
loss, Adam 1e-4 (beta1 0.5), batch 512. The same GAN trained with 5 and 10 unrolled
discriminator steps, without unrolling, and beside them WGAN-GP with the authors' toy
settings (``wgan-gp-toy``: lambda 0.1, 3x512, Adam 1e-4 (0.5, 0.9), n_critic 5), over 3
seeds. At every evaluation the run records which modes hold a high-quality sample (the
PacGAN protocol):

* snapshot rows of samples over training (Metz et al.'s figure);
* modes captured over time;
* mode hopping, the rotation the paper describes: the modes *visited* by any evaluation so
  far against those captured at once. A generator that hops covers more modes over time
  than at any one time.

The quick version is ring8 with small nets: GAN against the 2D default, one seed.

References: Metz et al. 2017, "Unrolled Generative Adversarial Networks"; Lin et al. 2018,
"PacGAN"; Gulrajani et al. 2017.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wganlab.config import resolve
from wganlab.experiments.base import check, pyplot, register, result, save_figure, train_runs

SNAPSHOT_SAMPLES = 500


class SnapshotRecorder:
    """A Trainer callback keeping (step, samples) at each evaluation."""

    def __init__(self):
        self.snapshots: list[tuple[int, np.ndarray]] = []

    def on_record(self, trainer, record: dict) -> None:
        if record["kind"] == "eval":
            self.snapshots.append((record["step"], trainer.sample(SNAPSHOT_SAMPLES, seed=trainer.config.seed).numpy()))


# Metz et al.'s 2D set-up: the unrolled preset with their one-layer discriminator
METZ = {"critic_depth": 1}
FULL_RUNS = {"gan": ("unrolled", {**METZ, "unroll_steps": 0}), "unrolled 5": ("unrolled", {**METZ, "unroll_steps": 5}),
             "unrolled 10": ("unrolled", {**METZ, "unroll_steps": 10}), "wgan-gp-toy": ("wgan-gp-toy", {})}
QUICK_RUNS = {"gan": ("gan", {"hidden": 32, "depth": 3, "batch_size": 64}),
              "wgan-gp-2d": ("wgan-gp-2d", {"hidden": 32, "depth": 3, "batch_size": 64})}


def runs_compared(quick: bool) -> dict:
    """label -> (preset, overrides) of the runs compared."""
    return QUICK_RUNS if quick else FULL_RUNS


def coverage_over_time(evals: list[dict]) -> dict:
    """Modes captured at each evaluation and modes visited by any evaluation up to it."""
    visited: set[int] = set()
    captured, visited_so_far = [], []
    for record in evals:
        now = {i for i, count in enumerate(record["mode_counts"]) if count > 0}
        visited |= now
        captured.append(len(now))
        visited_so_far.append(len(visited))
    return {"step": [r["step"] for r in evals], "captured": captured, "visited": visited_so_far}


@register("mode-collapse", "modes captured and visited over training on Metz et al.'s ring: GAN, Unrolled GAN "
                           "(5 and 10 steps), WGAN-GP with the authors' toy settings", seconds=1650)
def run(quick: bool, out: Path) -> dict:
    datasets, seeds, steps, every = ((("ring8",), (0, 1, 2), 1500, 100) if not quick
                                     else (("ring8",), (0,), 300, 30))
    compared = runs_compared(quick)
    presets = list(compared)
    names = [(data, label, seed) for data in datasets for label in presets for seed in seeds]
    configs = [resolve(compared[label][0], dict(data=data, steps=steps, seed=seed, log_every=every, eval_every=every,
                                                eval_samples=2500, w1_samples=300, **compared[label][1]))
               for data, label, seed in names]
    recorders = [SnapshotRecorder() for _ in configs]
    trainers = train_runs(configs, callbacks_for=lambda index, config: [recorders[index]])

    runs = {}
    for (data, preset, seed), trainer in zip(names, trainers):
        evals = [r for r in trainer.history if r["kind"] == "eval"]
        coverage = coverage_over_time(evals)
        runs[f"{data}/{preset}/{seed}"] = {
            **coverage, "final_modes": coverage["captured"][-1], "n_modes": evals[-1]["n_modes"],
            "final_high_quality": evals[-1]["high_quality_fraction"], "final_w1": evals[-1]["w1"],
            # hopping: modes ever visited beyond those held at the end
            "hopped": coverage["visited"][-1] - coverage["captured"][-1]}
    table = {data: {preset: {
        "final_modes_mean": float(np.mean([runs[f"{data}/{preset}/{s}"]["final_modes"] for s in seeds])),
        "final_modes": [runs[f"{data}/{preset}/{s}"]["final_modes"] for s in seeds],
        "visited_modes": [runs[f"{data}/{preset}/{s}"]["visited"][-1] for s in seeds],
        "high_quality_mean": float(np.mean([runs[f"{data}/{preset}/{s}"]["final_high_quality"] for s in seeds])),
        "hopped_mean": float(np.mean([runs[f"{data}/{preset}/{s}"]["hopped"] for s in seeds]))}
        for preset in presets} for data in datasets}

    checks = []
    for data in datasets:
        row = table[data]
        for wgan in [p for p in ("wgan-gp-toy", "wgan-gp-2d") if p in row]:
            for gan in [p for p in ("gan", "ns-gan") if p in row]:
                checks.append(check(f"{data}: mean final modes, {wgan} vs {gan}",
                                    [row[wgan]["final_modes_mean"], row[gan]["final_modes_mean"]],
                                    row[wgan]["final_modes_mean"] > row[gan]["final_modes_mean"],
                                    f"WGAN-GP covers more modes: {wgan} > {gan}"))
        for unrolled in [p for p in row if p.startswith("unrolled")]:
            checks.append(check(f"{data}: mean final modes, {unrolled} vs gan",
                                [row[unrolled]["final_modes_mean"], row["gan"]["final_modes_mean"]],
                                row[unrolled]["final_modes_mean"] > row["gan"]["final_modes_mean"],
                                f"Unrolled GAN ({unrolled.split()[1]} steps) covers more modes than GAN"))
        checks.append(check(f"{data}: GAN's modes visited over training minus held at the end, mean over seeds",
                            row["gan"]["hopped_mean"], row["gan"]["hopped_mean"] > 0, "GAN hops between modes: > 0"))

    plt = pyplot()
    plots = []
    for data in datasets:
        seed = seeds[0]
        shown = [(preset, recorders[names.index((data, preset, seed))]) for preset in presets]
        columns = 6
        fig, axes = plt.subplots(len(shown), columns, figsize=(2.4 * columns, 2.4 * len(shown)), squeeze=False)
        means = trainers[names.index((data, presets[0], seed))].dataset.means
        for row_axes, (preset, recorder) in zip(axes, shown):
            picks = np.linspace(0, len(recorder.snapshots) - 1, columns).round().astype(int)
            for ax, pick in zip(row_axes, picks):
                step, samples = recorder.snapshots[pick]
                ax.scatter(means[:, 0], means[:, 1], s=25, c="black", marker="x")
                ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:orange", alpha=0.5)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"step {step}", fontsize=8)
            row_axes[0].set_ylabel(preset)
        fig.suptitle(f"{data}, seed {seed}: samples over training (x: modes)")
        plots.append(save_figure(fig, out, f"mode_collapse_snapshots_{data}.png"))

        fig, axes = plt.subplots(1, len(presets), figsize=(4 * len(presets), 3.6), squeeze=False)
        for ax, preset in zip(axes[0], presets):
            for s in seeds:
                r = runs[f"{data}/{preset}/{s}"]
                line, = ax.plot(r["step"], r["captured"], "-", lw=1.2, label=f"seed {s}: captured")
                ax.plot(r["step"], r["visited"], ":", color=line.get_color(), lw=1.2, label=f"seed {s}: visited")
            ax.set(title=preset, xlabel="generator step", ylim=(0, r["n_modes"] + 0.5))
        axes[0][0].set_ylabel(f"{data} modes (solid: at once, dotted: visited so far)")
        axes[0][-1].legend(fontsize=7)
        plots.append(save_figure(fig, out, f"mode_collapse_coverage_{data}.png"))

    figures = {"presets": presets, "runs_compared": {k: list(v) for k, v in compared.items()},
               "datasets": list(datasets), "seeds": list(seeds), "steps": steps, "table": table, "runs": runs}
    claim = ("On the ring of 8 Gaussians, Unrolled GAN (5 and 10 steps) and WGAN-GP keep more modes than the same GAN "
             "without unrolling, and the GAN hops between modes: over training it visits modes it does not hold at "
             "the end.")
    protocol = ("Metz et al. 2017, Figure 1 and Appendix A: 8 Gaussians on a ring, G 2x128 ReLU on 256-D noise, "
                "D one ReLU layer of 128, minimax loss, Adam 1e-4 (0.5), batch 512, 0 / 5 / 10 unrolled steps; "
                "WGAN-GP with Gulrajani et al.'s toy script settings; modes and high quality by the PacGAN protocol "
                "(2,500 samples, 3 sigma).")
    scaled = (f"{steps} generator steps against the paper's 25,000 (snapshots every {every}); {len(seeds)} seed(s); "
              "ring8 is the paper's ring halved (radius 1, sigma 0.01 against 2 and 0.02: the same shape); torch's "
              "default initialisation for the paper's orthogonal (scale 0.8)"
              + ("; quick: GAN against the 2D default on 32-unit nets, batch 64" if quick else ""))
    return result(claim, checks, figures, plots, protocol=protocol, scaled=scaled)
