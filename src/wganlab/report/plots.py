"""The run report's two pictures, drawn from arrays with numpy and matplotlib only (no torch),
so that the ``figures`` side process (``wganlab.util.sidecar``) can draw them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wganlab.util.plotting import TITLE_Y, pyplot


def plot_samples(samples: np.ndarray, real: np.ndarray, path: Path, surface: dict | None = None,
                 title: str = "") -> None:
    """Generated samples over the real data, with the critic's value as filled contours."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    if surface is not None:
        contour = ax.contourf(surface["xs"], surface["ys"], surface["values"], levels=30, cmap="RdBu_r", alpha=0.55)
        fig.colorbar(contour, ax=ax, fraction=0.046, pad=0.04, label="critic value f(x)")
    ax.scatter(real[:, 0], real[:, 1], s=4, c="black", alpha=0.35, label="real", linewidths=0)
    ax.scatter(samples[:, 0], samples[:, 1], s=4, c="tab:orange", alpha=0.6, label="generated", linewidths=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", markerscale=3)
    ax.set_title(title, y=TITLE_Y)
    fig.subplots_adjust(left=0.09, right=0.9, bottom=0.06, top=0.94)  # speed: fixed margins, no tight_layout pass
    fig.savefig(path, dpi=110, format="png")  # format named: the run draws it ahead under a .tmp name
    plt.close(fig)


def plot_curves(records: list[dict], path: Path) -> None:
    """Losses, the critic's W1 estimate against the exact W1, mode metrics and gradient norms."""
    plt = pyplot()
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))

    def series(rows, key):
        pairs = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        return ([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else ([], [])

    def lines(ax, keys, title):  # one line per train-record key that the log has
        for key in keys:
            steps, values = series(train, key)
            if steps:
                ax.plot(steps, values, label=key, lw=1)
        ax.set_title(title, y=TITLE_Y)
        ax.set_xlabel("generator step")
        ax.legend()

    lines(axes[0, 0], ("d_loss", "g_loss", "penalty"), "losses")

    ax = axes[0, 1]
    steps, values = series(train, "w_estimate")
    ax.plot(steps, values, label="critic estimate E f(x) - E f(G(z))", lw=1)
    steps, values = series(evals, "w1")
    ax.plot(steps, values, "o-", label="exact W1 (optimal transport)")
    ax.set_title("Wasserstein-1: the critic's estimate vs the truth", y=TITLE_Y)
    ax.set_xlabel("generator step")
    ax.legend()

    ax = axes[1, 0]
    steps, values = series(evals, "modes_captured")
    if steps:
        ax.plot(steps, values, "o-", label="modes captured", color="tab:green")
        ax.set_ylim(0, max(r.get("n_modes", 1) for r in evals) + 0.5)
        twin = ax.twinx()
        steps, values = series(evals, "high_quality_fraction")
        twin.plot(steps, [100 * v for v in values], "s--", color="tab:purple", label="high quality %")
        twin.set_ylim(0, 100)
        twin.set_ylabel("high-quality samples %")
        ax.set_ylabel("modes captured")
    else:
        ax.text(0.5, 0.5, "this distribution has no modes to count", ha="center", transform=ax.transAxes)
    ax.set_title("mode coverage and sample quality", y=TITLE_Y)
    ax.set_xlabel("generator step")

    axes[1, 1].set_yscale("log")
    lines(axes[1, 1], ("grad_norm_g", "grad_norm_d", "gp_grad_norm"), "gradient norms")
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.08, top=0.95, wspace=0.3, hspace=0.35)  # no tight_layout pass
    fig.savefig(path, dpi=100)
    plt.close(fig)
