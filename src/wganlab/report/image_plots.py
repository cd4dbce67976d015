"""An image run's report pictures drawn from numbers, numpy and matplotlib only (no torch), so that
the ``figures`` side process (``wganlab.util.sidecar``) can draw them while the run ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wganlab.util.plotting import pyplot


def plot_class_histogram(counts: list[int], path: Path, title: str = "") -> None:
    plt = pyplot()
    counts = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(np.arange(len(counts)), counts / max(counts.sum(), 1), color="tab:blue")
    ax.axhline(1 / len(counts), color="black", ls="--", lw=1, label="uniform")
    ax.set_xticks(np.arange(len(counts)))
    ax.set_xlabel("predicted digit (evaluation network)")
    ax.set_ylabel("fraction of samples")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_image_metrics(evals: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    steps = [r["step"] for r in evals]
    axes[0].plot(steps, [r["fid"] for r in evals], "o-", label="FID")
    axes[0].set_yscale("log")
    axes[0].set_title(f"FID to held-out real images ({evals[-1].get('feature_space', '')} features)")
    axes[0].set_xlabel("generator step")
    ax = axes[1]
    for key, label in (("classes_covered", "classes covered of 10"), ("modes_captured", "modes captured of 1000")):
        if evals[-1].get(key) is not None:
            ax.plot(steps, [r.get(key) for r in evals], "o-", color="tab:green", label=label)
            ax.set_ylabel(label)
    for key in ("class_kl", "mode_kl"):
        if evals[-1].get(key) is not None:
            twin = ax.twinx()
            twin.plot(steps, [r.get(key) for r in evals], "s--", color="tab:purple", label=key)
            twin.set_ylabel(f"{key} (nats)")
    ax.set_title("coverage of the classes")
    ax.set_xlabel("generator step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
