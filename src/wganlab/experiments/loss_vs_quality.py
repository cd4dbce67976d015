"""loss-vs-quality: does the training loss tell you how good the samples are?

The WGAN paper's argument (Arjovsky et al. 2017, Figures 3-4): the critic's estimate
E f(x) - E f(G(z)) of W1 falls as the samples improve, while a GAN's discriminator and
generator losses say nothing about sample quality. Measured here on ring8 as Spearman's rank
correlation, over the evaluations of one training run, between each loss and the exact W1
(optimal transport between generated and real samples): for WGAN (clipping) and WGAN-GP the
critic's estimate, for GAN the discriminator loss and the generator loss (in absolute value:
a loss that falls as quality rises counts as tracking it too).

Each run keeps its source's settings: WGAN the paper's (``wgan``: RMSprop 5e-5, c 0.01,
n_critic 5), WGAN-GP the authors' toy script's (``wgan-gp-toy``: lambda 0.1, 3x512, Adam 1e-4
(0.5, 0.9), n_critic 5, batch 256), GAN its own (``gan``: Adam 2e-4 (0.5, 0.999)), all on the
3x512 toy nets. A correlation over a run whose quality did not change says nothing, so each
run must see its exact W1 fall at least twofold (a check).

The full version adds MNIST (when the digits are fetched): the same correlation with the FID
(in the shipped classifier's feature space) over training, for WGAN-GP's critic estimate and
for the NS-GAN's losses, with the same small MLP nets and learning rate (the paper's conv nets
take seconds a step on a CPU). The quick version is the toy part only.
"""

from __future__ import annotations

from pathlib import Path

from wganlab.config import resolve
from wganlab.data.mnist import mnist_available
from wganlab.experiments.base import check, pyplot, register, result, save_figure, spearman, train_runs

PRESET_LOSSES = {"wgan": ("w_estimate",), "wgan-gp-toy": ("w_estimate",), "wgan-gp-2d": ("w_estimate",),
                 "gan": ("d_loss", "g_loss")}
FULL_PRESETS = ("wgan", "wgan-gp-toy", "gan")
# The paper presets barely move W1 in the seconds a quick run has; the tuned WGAN-GP does.
QUICK_PRESETS = ("wgan-gp-2d", "gan")
STEPS = 1600  # the full runs' length: long enough for every run's W1 to fall twofold (docs/experiments.md)


# MNIST: the image default (what `wganlab train --data mnist` runs) and NS-GAN's MNIST recipe on the
# same MLP nets (2x256, latent 64) at the same learning rate (1e-3)
MNIST_PRESET_LOSSES = {"wgan-gp-images": ("w_estimate",), "ns-gan-mnist": ("d_loss", "g_loss")}


def loss_and_w1_series(history: list[dict], key: str, quality: str = "w1") -> tuple[list[int], list[float], list[float]]:
    """(steps, the train record's ``key``, the eval record's ``quality``: the exact W1 or the
    FID) at every evaluation that has both."""
    train = {r["step"]: r for r in history if r["kind"] == "train"}
    rows = [(r["step"], train[r["step"]][key], r[quality]) for r in history
            if r["kind"] == "eval" and r["step"] in train and key in train[r["step"]]]
    return [s for s, _, _ in rows], [v for _, v, _ in rows], [w for _, _, w in rows]


def _rank_correlations(names, trainers, losses_of: dict, quality: str):
    """Spearman(loss, quality) of each preset's logged losses per run: (by seed, series, mean over seeds)."""
    correlations: dict[str, list[float]] = {}
    series = {}
    for (preset, seed), trainer in zip(names, trainers):
        for key in losses_of[preset]:
            s, loss, measured = loss_and_w1_series(trainer.history, key, quality=quality)
            correlations.setdefault(f"{preset} {key}", []).append(spearman(loss, measured))
            series[f"{preset} {key} seed {seed}"] = {"step": s, "loss": loss, quality: measured}
    mean_rho = {name: sum(v) / len(v) for name, v in correlations.items()}
    return correlations, series, mean_rho


@register("loss-vs-quality", "Spearman correlation over training between each loss and the exact W1 "
                             "(WGAN, WGAN-GP critics vs GAN losses)", seconds=783)
def run(quick: bool, out: Path) -> dict:
    steps, every, n_eval, seeds = (STEPS, STEPS // 20, 1000, (0,)) if not quick else (300, 20, 300, (0,))
    # the paper presets' own nets in the full version; the quick one shrinks them
    shrunk = {} if not quick else dict(hidden=32, batch_size=64)
    presets = QUICK_PRESETS if quick else FULL_PRESETS
    names = [(preset, seed) for preset in presets for seed in seeds]
    configs = [resolve(preset, dict(data="ring8", steps=steps, log_every=every, eval_every=every, eval_samples=n_eval,
                                    w1_samples=n_eval, seed=seed, **shrunk))
               for preset, seed in names]
    trainers = train_runs(configs)

    correlations, series, mean_rho = _rank_correlations(names, trainers, PRESET_LOSSES, "w1")
    # how far each run's quality moved: first evaluation's W1 over the best reached
    w1_fall = {f"{preset} seed {seed}": _w1_fall(trainer.history) for (preset, seed), trainer in zip(names, trainers)}
    critics = [name for name in mean_rho if name.endswith("w_estimate")]
    wasserstein = min(mean_rho[name] for name in critics)
    gan = max(abs(mean_rho["gan d_loss"]), abs(mean_rho["gan g_loss"]))
    checks = [check("exact W1 at the first evaluation / the lowest over training, per run", w1_fall,
                    all(v >= 2 for v in w1_fall.values()),
                    "every run's W1 falls at least twofold: otherwise there is nothing to correlate")]
    checks += [check(f"{name.split()[0]}: Spearman(critic estimate, exact W1), mean over seeds", mean_rho[name],
                     mean_rho[name] > 0.5, "tracks quality: > 0.5") for name in critics]
    checks.append(check("GAN: largest |Spearman| of the discriminator and generator losses with W1", gan,
                        gan < wasserstein, f"below the Wasserstein critics' lowest correlation ({wasserstein:.3f})"))

    plt = pyplot()
    shown = critics + ["gan d_loss", "gan g_loss"]
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4.5))
    for ax, key in zip(axes, shown):
        run0 = series[f"{key} seed {seeds[0]}"]
        ax.plot(run0["step"], run0["loss"], "o-", ms=3, label=key.split()[1])
        ax.set(xlabel="generator step", title=f"{key}: Spearman {mean_rho[key]:+.2f}")
        twin = ax.twinx()
        twin.plot(run0["step"], run0["w1"], "s--", ms=3, color="tab:red", label="exact W1")
        twin.set_ylabel("exact W1", color="tab:red")
        ax.legend(loc="upper center")
    plots = [save_figure(fig, out, "loss_vs_quality.png")]

    figures = {"presets": list(presets), "steps": steps, "eval_every": every, "seeds": list(seeds), "shrunk": shrunk,
               "w1_fall": w1_fall, "spearman_by_seed": correlations, "spearman_mean": mean_rho, "series": series}
    claim = ("Over training, the WGAN and WGAN-GP critics' Wasserstein estimates rank-correlate with the exact W1 "
             "of the samples, and the GAN's discriminator and generator losses do not.")
    notes = ""
    if not quick and mnist_available():
        mnist_checks, figures["mnist"], mnist_plot = mnist_part(out)
        checks += mnist_checks
        plots.append(mnist_plot)
        claim = claim[:-1] + "; on MNIST the WGAN-GP critic's estimate tracks the FID and the NS-GAN's losses do not."
    elif not quick:
        notes = "MNIST part not run: the digits are not fetched (wganlab data fetch mnist)."
    protocol = ("Arjovsky et al. 2017, Figures 3-4 (the critic's estimate against sample quality over training): "
                "WGAN with RMSprop 5e-5, c 0.01, n_critic 5; WGAN-GP with Gulrajani et al.'s toy settings (lambda "
                "0.1, Adam 1e-4 (0.5, 0.9), n_critic 5, batch 256); GAN with Adam 2e-4 (0.5, 0.999); 3x512 MLPs; "
                "quality as the exact W1 on ring8 (and the FID on MNIST).")
    scaled = (f"{steps} generator steps, {len(seeds)} seed(s), an evaluation every {every} steps; ring8 for the "
              "paper's LSUN bedrooms (the MNIST part: 2x256 MLPs, 1,500 steps, 2 seeds)"
              + ("; quick: the 2D default against GAN on 32-unit nets, batch 64" if quick else ""))
    return result(claim, checks, figures, plots, notes, protocol=protocol, scaled=scaled)


def _w1_fall(history: list[dict]) -> float:
    w1 = [r["w1"] for r in history if r["kind"] == "eval"]
    return float(w1[0] / min(w1))


def mnist_part(out: Path, steps: int = 1500, every: int = 100, seeds=(0, 1)) -> tuple[list[dict], dict, str]:
    """Spearman(loss, FID) over training on MNIST: (checks, figures, plot name)."""
    names = [(preset, seed) for preset in MNIST_PRESET_LOSSES for seed in seeds]
    configs = [resolve(preset, dict(net="mlp", hidden=256, depth=2, latent_dim=64, lr_g=1e-3, lr_d=1e-3,
                                    steps=steps, log_every=every, eval_every=every, eval_samples=1000,
                                    held_out=256, seed=seed))
               for preset, seed in names]
    trainers = train_runs(configs)
    correlations, series, mean_rho = _rank_correlations(names, trainers, MNIST_PRESET_LOSSES, "fid")
    critic = mean_rho["wgan-gp-images w_estimate"]
    gan = max(abs(mean_rho["ns-gan-mnist d_loss"]), abs(mean_rho["ns-gan-mnist g_loss"]))
    checks = [check("MNIST, wgan-gp-images: Spearman(critic estimate, FID), mean over seeds", critic, critic > 0.5,
                    "tracks quality: > 0.5"),
              check("MNIST, ns-gan-mnist: largest |Spearman| of the D and G losses with FID", gan, gan < critic,
                    f"below the WGAN-GP critic's correlation ({critic:.3f})")]

    plt = pyplot()
    shown = list(mean_rho)
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4.5))
    for ax, key in zip(axes, shown):
        run0 = series[f"{key} seed {seeds[0]}"]
        ax.plot(run0["step"], run0["loss"], "o-", ms=3, label=key.split()[1])
        ax.set(xlabel="generator step", title=f"MNIST {key}: Spearman {mean_rho[key]:+.2f}")
        twin = ax.twinx()
        twin.plot(run0["step"], run0["fid"], "s--", ms=3, color="tab:red", label="FID")
        twin.set(ylabel="FID (evalnet features)", yscale="log")
        ax.legend(loc="upper center")
    plot = save_figure(fig, out, "loss_vs_quality_mnist.png")
    figures = {"presets": list(MNIST_PRESET_LOSSES), "net": "mlp 2x256, latent 64, lr 1e-3", "steps": steps,
               "eval_every": every, "seeds": list(seeds), "spearman_by_seed": correlations,
               "spearman_mean": mean_rho, "series": series}
    return checks, figures, plot
