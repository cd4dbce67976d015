"""mnist-modes: which digits does a collapsing GAN draw, and which does WGAN-GP draw?

Mode collapse on real images, read through the shipped MNIST classifier
(:mod:`wganlab.metrics.evalnet`): each generated digit is classified, and the predicted class
histogram is scored by its KL divergence to uniform (0 nats: every digit equally often;
log 10 = 2.303 nats: one digit only) and by the classes it covers.

Both runs use the same small MLP nets and the same number of generator steps (the paper's
conv nets take seconds a step on a CPU). The two configurations:

* WGAN-GP: the image default, ``wgan-gp-images`` (lambda 10, n_critic 2, Adam 1e-3 (0.5, 0.9),
  batch 256, bf16 matmuls, the generator's average from step 1,000 weighing steps linearly in
  their age, ``ema_ramp = 3``), the recipe
  ``wganlab train --data mnist`` uses;
* the collapsing one: the non-saturating GAN with the generator's learning rate ten times
  the discriminator's (2e-3 against 2e-4). A generator that moves much faster than its
  discriminator jumps to whatever the discriminator currently rates most real, faster than
  the discriminator can learn to reject it: the textbook mechanism of mode collapse
  (Goodfellow 2016, "NIPS tutorial", section 5.1.1; the reverse of the two time-scale rule
  of Heusel et al. 2017, which makes D the faster player).

Needs the real MNIST digits (``wganlab data fetch mnist``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wganlab.config import resolve
from wganlab.data.mnist import DataError, default_mnist_dir, mnist_available
from wganlab.experiments.base import check, pyplot, register, result, save_figure, train_runs

WGAN_GP = ("wgan-gp-images", {})
COLLAPSING = ("ns-gan-mnist", {"lr_g": 2e-3, "lr_d": 2e-4})
RUNS = {"wgan-gp": WGAN_GP, "ns-gan, lr_g = 10 lr_d": COLLAPSING}
GRID = 64  # samples shown per sample grid


def configs(quick: bool) -> tuple[list[tuple[str, int]], list, dict]:
    """(run names (label, seed), their TrainConfigs, the shared settings)."""
    # quick: one evaluation at the end (each costs a pass of the classifier)
    shared = (dict(steps=600, hidden=128, seeds=(0,), eval_samples=1000, evals=1) if quick
              else dict(steps=2000, hidden=256, seeds=(0, 1), eval_samples=2000, evals=5))
    names = [(label, seed) for label in RUNS for seed in shared["seeds"]]
    built = []
    for label, seed in names:
        preset, overrides = RUNS[label]
        built.append(resolve(preset, dict(net="mlp", hidden=shared["hidden"], depth=2, latent_dim=64,
                                          steps=shared["steps"], seed=seed, log_every=50,
                                          eval_every=max(shared["steps"] // shared["evals"], 1),
                                          eval_samples=shared["eval_samples"], held_out=256, **overrides)))
    return names, built, shared


@register("mnist-modes", "MNIST class histograms through the shipped classifier: a collapsing NS-GAN "
                         "(lr_g = 10 lr_d) vs WGAN-GP", seconds=263)
def run(quick: bool, out: Path) -> dict:
    if not mnist_available():
        raise DataError(f"mnist-modes needs the MNIST digits, not found in {default_mnist_dir()}; "
                        f"run 'wganlab data fetch mnist'")
    names, built, shared = configs(quick)
    trainers = train_runs(built)

    runs = {}
    for (label, seed), trainer in zip(names, trainers):
        evals = [r for r in trainer.history if r["kind"] == "eval"]
        last = evals[-1]
        runs[f"{label}/{seed}"] = {
            "class_kl": last["class_kl"], "classes_covered": last["classes_covered"],
            "class_counts": last["class_counts"], "fid": last["fid"],
            # digits holding at least 2% of the samples: a stray misclassification is not a mode
            "classes_above_2pct": int(sum(c >= 0.02 * sum(last["class_counts"]) for c in last["class_counts"])),
            # the trainer's mean pairwise distance of samples over that of real digits: ~1 healthy,
            # near 0 when every z gives (nearly) one image
            "sample_spread": trainer.last_train["sample_spread"],
            "over_training": {"step": [r["step"] for r in evals], "class_kl": [r["class_kl"] for r in evals],
                              "fid": [r["fid"] for r in evals]}}
    seeds = shared["seeds"]
    table = {label: {key: float(np.mean([runs[f"{label}/{s}"][key] for s in seeds]))
                     for key in ("class_kl", "classes_covered", "classes_above_2pct", "fid", "sample_spread")}
             for label in RUNS}
    wgan, collapsing = table["wgan-gp"], table["ns-gan, lr_g = 10 lr_d"]
    checks = [
        check("collapsing NS-GAN: KL(class histogram || uniform), nats, mean over seeds", collapsing["class_kl"],
              collapsing["class_kl"] > 1.0, "concentrated on a few digits: > 1.0 (log 10 = 2.303 is one digit)"),
        check("WGAN-GP: KL(class histogram || uniform), nats, mean over seeds", wgan["class_kl"],
              wgan["class_kl"] < 0.5, "covers the digits evenly: < 0.5"),
        check("digits holding >= 2% of samples, WGAN-GP vs collapsing NS-GAN, mean over seeds",
              [wgan["classes_above_2pct"], collapsing["classes_above_2pct"]],
              wgan["classes_above_2pct"] >= 8 and collapsing["classes_above_2pct"] <= 4,
              "WGAN-GP >= 8 of 10, collapsing <= 4"),
    ]

    plots = _plots(out, names, trainers, runs)
    figures = {"steps": shared["steps"], "hidden": shared["hidden"], "depth": 2, "seeds": list(seeds),
               "configs": {label: {"preset": preset, **overrides} for label, (preset, overrides) in RUNS.items()},
               "table": table, "runs": runs}
    notes = ("FID is in the shipped classifier's feature space (compare runs here with each other only). The "
             "histogram alone cannot tell a generator collapsed onto good digits from one collapsed onto a poor "
             "image: read it with the FID and the sample spread (mean pairwise distance of samples over that of "
             "real digits: 1 for a generator as varied as the data, 0 when every z gives one image).")
    claim = ("On MNIST with the same MLP nets and steps, a non-saturating GAN whose generator learns ten times faster "
             "than its discriminator draws only a few digits (high KL of the predicted class histogram to uniform, "
             "few classes covered), while WGAN-GP covers the ten digits evenly.")
    protocol = ("The seed's MNIST claim (a collapsed GAN draws a few digits, a healthy WGAN-GP all ten), read as "
                "Srivastava et al. 2017 (VEEGAN) and Lin et al. 2018 (PacGAN) read mode collapse on digits: a "
                "pretrained classifier's predicted class histogram and its KL to uniform; the collapse induced by "
                "a generator faster than its discriminator (Goodfellow 2016, Section 5.1.1).")
    scaled = (f"{shared['steps']} generator steps, {len(shared['seeds'])} seed(s), {shared['hidden']}-unit MLPs "
              "for the papers' conv nets; the classifier is the project's shipped evaluation network")
    return result(claim, checks, figures, plots, notes, protocol=protocol, scaled=scaled)


def _plots(out: Path, names, trainers, runs) -> list[str]:
    from wganlab.observe.grids import grid_array

    plt = pyplot()
    seed = names[0][1]
    shown = [(label, trainers[names.index((label, seed))]) for label in RUNS]
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.6), squeeze=False, sharey=True)
    for ax, (label, _) in zip(axes[0], shown):
        r = runs[f"{label}/{seed}"]
        counts = np.asarray(r["class_counts"], dtype=float)
        ax.bar(range(10), counts / counts.sum(), color="tab:blue" if label == "wgan-gp" else "tab:red")
        ax.axhline(0.1, color="black", ls=":", lw=1, label="uniform")
        ax.set(xticks=range(10), xlabel="predicted digit",
               title=f"{label}: KL {r['class_kl']:.2f} nats, {r['classes_covered']}/10 covered")
    axes[0][0].set_ylabel("fraction of samples")
    axes[0][0].legend()
    plots = [save_figure(fig, out, "mnist_modes_histograms.png")]

    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.4), squeeze=False)
    for ax, (label, trainer) in zip(axes[0], shown):
        ax.imshow(grid_array(trainer.sample(GRID, seed=seed), nrow=8, scale=1), cmap="gray")
        ax.set_axis_off()
        ax.set_title(f"{label}, seed {seed}, step {trainer.step}")
    plots.append(save_figure(fig, out, "mnist_modes_samples.png"))
    return plots
