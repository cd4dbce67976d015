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
AHEAD_PNG = ".samples.png.ahead.tmp"  # samples.png drawn ahead (SamplesAhead) until the report takes it


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


def write_report(run_dir: str | Path, samples_ahead=None) -> Path:
    """Draws the plots and writes ``report.html`` from the files in ``run_dir``.

    ``samples_ahead``: the Future of ``samples.png`` already being drawn under its ``.tmp`` name
    from the same samples and surface (:class:`SamplesAhead`); it is waited for and renamed
    instead of drawn again.
    """
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
    elif shape == (2,) and (samples_ahead is not None or samples_file.is_file()):
        if samples_ahead is not None:
            drawn.append(samples_ahead)
        else:
            real = real_points(make_dataset(config), config.seed)
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
    if samples_ahead is not None:
        (run.path / AHEAD_PNG).replace(run.path / SAMPLES_PNG)

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


def real_points(dataset, seed: int) -> np.ndarray:
    """The 2,000 real points drawn under the samples in ``samples.png``."""
    import torch

    return dataset.sample(2000, generator=torch.Generator().manual_seed(seed)).numpy()


class SamplesAhead:
    """Trainer callback (2D data, rank 0): at the final evaluation (step ``config.steps``) it takes
    the samples and the critic surface the run folder will hold and starts ``samples.png`` in the
    figures side process, so the picture is drawn while the exact W1 is solved instead of after it
    (0.1-0.15 s of a short run). :meth:`take` hands them to the end of the run if the nets have not
    changed since (same step, same tensor versions), else ``None`` (the end draws them itself)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir)
        self._held = None

    def before_eval(self, trainer) -> None:
        config = trainer.config
        if trainer.step != config.steps:
            return
        self.discard()
        samples = trainer.sample(config.eval_samples, seed=config.seed).numpy()
        xs, ys, values = trainer.critic_surface()
        title = f"{config.preset} on {config.data}, {trainer.step} steps"
        picture = sidecar.submit("figures", "wganlab.report.plots:plot_samples", samples,
                                 real_points(trainer.dataset, config.seed), self.path / AHEAD_PNG,
                                 {"xs": xs, "ys": ys, "values": values}, title)
        self._held = (trainer.nets_version(), samples, (xs, ys, values), picture)

    def take(self, trainer):
        """``(samples, surface, picture Future)`` of the state the run ends in, or ``None``."""
        held = self._held
        if held is None or held[0] != trainer.nets_version():
            self.discard()
            return None
        self._held = None
        return held[1:]

    def discard(self) -> None:
        """Waits for a picture not used and removes it."""
        held, self._held = self._held, None
        if held is not None:
            try:
                held[3].result()
            except Exception:  # noqa: BLE001 - a picture not used: its error does not matter
                pass
            (self.path / AHEAD_PNG).unlink(missing_ok=True)
