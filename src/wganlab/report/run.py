"""Plots and a self-contained HTML report, rebuilt from the run folder alone."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from wganlab.metrics.headline import headline_of
from wganlab.report.html import image_tag, page_head
from wganlab.runs.folder import CONFIG, RunFolder
from wganlab.util.plotting import pyplot

SAMPLES_PNG = "samples.png"
CURVES_PNG = "curves.png"
CRITIC_SURFACE = "critic_surface.npz"
REPORT = "report.html"


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
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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

    ax = axes[0, 0]
    for key in ("d_loss", "g_loss", "penalty"):
        steps, values = series(train, key)
        if steps:
            ax.plot(steps, values, label=key, lw=1)
    ax.set_title("losses")
    ax.set_xlabel("generator step")
    ax.legend()

    ax = axes[0, 1]
    steps, values = series(train, "w_estimate")
    ax.plot(steps, values, label="critic estimate E f(x) - E f(G(z))", lw=1)
    steps, values = series(evals, "w1")
    ax.plot(steps, values, "o-", label="exact W1 (optimal transport)")
    ax.set_title("Wasserstein-1: the critic's estimate vs the truth")
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
    ax.set_title("mode coverage and sample quality")
    ax.set_xlabel("generator step")

    ax = axes[1, 1]
    for key in ("grad_norm_g", "grad_norm_d", "gp_grad_norm"):
        steps, values = series(train, key)
        if steps:
            ax.plot(steps, values, label=key, lw=1)
    ax.set_yscale("log")
    ax.set_title("gradient norms")
    ax.set_xlabel("generator step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: dict) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_format(v)}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _findings_section(records: list[dict], summary: dict) -> list[str]:
    """The doctor's findings, as written to metrics.jsonl; nothing when the doctor did not run."""
    findings = [r for r in records if r.get("kind") == "finding"]
    if not findings:
        if "findings" in summary:
            return ["<h2>Doctor</h2>", "<p>The doctor raised no finding.</p>"]
        return []
    rows = "".join(
        f"<tr><td>{int(f['step'])}</td><td>{html.escape(f['severity'])}</td><td><b>{html.escape(f['title'])}</b>"
        f" ({html.escape(f['detector'])})<br>{html.escape(f['meaning'])}</td><td>{html.escape(f['fix'])}</td></tr>"
        for f in findings)
    return ["<h2>Doctor: findings</h2>",
            f"<table><tr><th>step</th><th>severity</th><th>what holds and what it means</th><th>what to try</th></tr>"
            f"{rows}</table>"]


def write_report(run_dir: str | Path) -> Path:
    """Draws the plots and writes ``report.html`` from the files in ``run_dir``."""
    from wganlab.data import data_shape, make_dataset

    run = RunFolder(run_dir)
    config = run.read_config()
    records = run.read_metrics()
    summary = run.read_summary()
    samples_file = run.path / "samples.npy"
    images = []
    shape = data_shape(config)
    if len(shape) > 1:
        from wganlab.report.images import image_report_images

        title = f"{config.preset} on {config.data}, {summary.get('steps', config.steps)} steps"
        images += image_report_images(run.path, records, summary, title)
    elif samples_file.is_file() and shape == (2,):
        import torch

        dataset = make_dataset(config)
        real = dataset.sample(2000, generator=torch.Generator().manual_seed(config.seed)).numpy()
        samples = np.load(samples_file)
        surface_file = run.path / CRITIC_SURFACE
        surface = dict(np.load(surface_file)) if surface_file.is_file() else None
        title = f"{config.preset} on {config.data}, {summary.get('steps', config.steps)} steps"
        plot_samples(samples, real, run.path / SAMPLES_PNG, surface, title)
        images.append((SAMPLES_PNG, "generated samples (orange) over real data (black), critic value as contours"))
    if records:
        plot_curves(records, run.path / CURVES_PNG)
        images.append((CURVES_PNG, "training curves"))

    headline = headline_of(summary)
    parts = [page_head(f"wganlab run {run.path.name}", 1100, ".headline{font-size:1.2em}"),
             f"<h1>wganlab run <code>{html.escape(run.path.name)}</code></h1>",
             f"<p class='headline'>{html.escape(config.preset)}: {html.escape(config.objective)} objective, "
             f"{html.escape(config.constraint)} constraint, on {html.escape(config.data)}.</p>",
             "<h2>Final metrics</h2>", _table(headline) if headline else "<p>No summary: the run did not finish.</p>"]
    parts += _findings_section(records, summary)
    for name, caption in images:
        parts += [f"<h2>{html.escape(caption)}</h2>", image_tag(run.path / name, caption)]
    parts += ["<h2>Config</h2>", _table(json.loads((run.path / CONFIG).read_text())), "</body></html>"]
    out = run.path / REPORT
    out.write_text("\n".join(parts))
    return out
