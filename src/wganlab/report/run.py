"""Plots and a self-contained HTML report, rebuilt from the run folder alone."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from wganlab.metrics.headline import headline_of
from wganlab.report.html import image_tag, page_head
from wganlab.runs.folder import CONFIG, RunFolder
from wganlab.report.plots import plot_curves, plot_samples  # noqa: F401 (re-exported)
from wganlab.util import sidecar

SAMPLES_PNG = "samples.png"
CURVES_PNG = "curves.png"
CRITIC_SURFACE = "critic_surface.npz"
REPORT = "report.html"


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
    images, drawn = [], []
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
        drawn.append(sidecar.submit("figures", "wganlab.report.plots:plot_samples", samples, real,
                                    run.path / SAMPLES_PNG, surface, title))
        images.append((SAMPLES_PNG, "generated samples (orange) over real data (black), critic value as contours"))
    if records:
        drawn.append(sidecar.submit("figures", "wganlab.report.plots:plot_curves", records, run.path / CURVES_PNG))
        images.append((CURVES_PNG, "training curves"))
    for picture in drawn:
        picture.result()  # drawn in the figures side process where it runs, else here

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
