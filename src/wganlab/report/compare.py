"""One self-contained HTML page comparing runs: curves overlaid, final metrics side by side
(the best value of each row highlighted), the configs' differences, and a sample panel per run.

Built from the run folders alone; every image is inlined as a base64 PNG, so the page opens
anywhere with no network and no other file.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import numpy as np

from wganlab.util.plotting import pyplot
from wganlab.metrics.headline import HEADLINE
from wganlab.report.html import page_head, png_base64
from wganlab.runs.folder import SAMPLES, RunFolder, RunFolderError

# final metric -> which way is better ("max", "min" or None); rows appear in this order
METRICS = {metric.key: metric.better for metric in HEADLINE if metric.key not in ("n_modes", "feature_space")}
# training-curve panels: (title, record kind, keys)
CURVES = [
    ("critic loss d_loss", "train", ("d_loss",)),
    ("generator loss g_loss", "train", ("g_loss",)),
    ("critic's W1 estimate E f(x) - E f(G(z))", "train", ("w_estimate",)),
    ("exact W1 (optimal transport)", "eval", ("w1",)),
    ("modes captured", "eval", ("modes_captured",)),
    ("high-quality fraction", "eval", ("high_quality_fraction",)),
]


class _LoadedRun:
    def __init__(self, path: Path, label: str):
        folder = RunFolder(path)
        self.path = folder.path
        self.label = label
        self.config = folder.read_config()  # refuses a folder that is not a run
        self.summary = folder.read_summary()
        self.records = folder.read_metrics()
        samples = folder.path / SAMPLES
        self.samples = np.load(samples) if samples.is_file() else None


def _labels(paths: list[Path]) -> list[str]:
    """Folder names, or whole paths where two runs share a name."""
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    pyplot().close(fig)
    return png_base64(buffer.getvalue())


def _curves_png(runs: list[_LoadedRun]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, kind, keys) in zip(axes.flat, CURVES):
        drawn = False
        for index, run in enumerate(runs):
            for key in keys:
                rows = [r for r in run.records if r.get("kind") == kind and r.get(key) is not None]
                if rows:
                    style = "o-" if kind == "eval" else "-"
                    ax.plot([r["step"] for r in rows], [r[key] for r in rows], style, lw=1, ms=3,
                            color=colors[index % len(colors)], label=run.label)
                    drawn = True
        ax.set_title(title)
        ax.set_xlabel("generator step")
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(runs), 4), fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)


def _real_points(config) -> np.ndarray | None:
    import torch

    from wganlab.data.toy import make_toy

    try:
        dataset = make_toy(config.data, **config.to_dict())
    except ValueError:  # data that is not a built-in distribution: no real overlay
        return None
    if dataset.dim != 2:
        return None
    return dataset.sample(1500, generator=torch.Generator().manual_seed(config.seed)).numpy()


def _samples_png(run: _LoadedRun) -> str | None:
    if run.samples is None or run.samples.ndim != 2 or run.samples.shape[1] != 2:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    real = _real_points(run.config)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=3, c="black", alpha=0.3, linewidths=0)
    ax.scatter(run.samples[:, 0], run.samples[:, 1], s=3, c="tab:orange", alpha=0.6, linewidths=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(run.label, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _best(values: list, direction: str | None) -> set[int]:
    numbers = [(i, v) for i, v in enumerate(values) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if direction is None or len(numbers) < 2:
        return set()
    target = (max if direction == "max" else min)(v for _, v in numbers)
    return {i for i, v in numbers if v == target}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _metrics_table(runs: list[_LoadedRun]) -> str:
    head = "".join(f"<th>{html.escape(run.label)}</th>" for run in runs)
    rows = []
    for key, direction in METRICS.items():
        values = [run.summary.get(key) for run in runs]
        if all(v is None for v in values):
            continue
        best = _best(values, direction)
        hint = {"max": " (higher is better)", "min": " (lower is better)"}.get(direction, "")
        cells = "".join(f"<td class='best'>{_cell(v)}</td>" if i in best else f"<td>{_cell(v)}</td>"
                        for i, v in enumerate(values))
        rows.append(f"<tr><th>{html.escape(key)}{hint}</th>{cells}</tr>")
    if not rows:
        return "<p>No run has a summary: none finished.</p>"
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _config_table(runs: list[_LoadedRun]) -> str:
    configs = [run.config.to_dict() for run in runs]
    keys = [k for k in configs[0] if len({repr(c.get(k)) for c in configs}) > 1]
    if not keys:
        return "<p>All configs are identical.</p>"
    head = "".join(f"<th>{html.escape(run.label)}</th>" for run in runs)
    body = "".join(f"<tr><th>{html.escape(k)}</th>{''.join(f'<td>{_cell(c.get(k))}</td>' for c in configs)}</tr>"
                   for k in keys)
    return f"<table><tr><th>key</th>{head}</tr>{body}</table>"


def write_comparison(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Writes the comparison page of ``run_dirs`` to ``out`` and returns its path.

    Raises:
        RunFolderError: no runs, or a folder that is not a run folder.
    """
    if not run_dirs:
        raise RunFolderError("compare needs at least one run folder")
    paths = [Path(p) for p in run_dirs]
    for path in paths:
        if not path.is_dir():
            raise RunFolderError(f"run folder {path} does not exist")
    runs = [_LoadedRun(path, label) for path, label in zip(paths, _labels(paths))]
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise RunFolderError(f"--out must name an .html file, got {out}")

    panels = []
    for run in runs:
        image = _samples_png(run)
        body = (f"<img alt='samples of {html.escape(run.label)}' src='data:image/png;base64,{image}'>"
                if image else "<p>no 2-D samples</p>")
        panels.append(f"<div class='panel'>{body}<br>{html.escape(run.label)}</div>")
    listing = "".join(f"<li><code>{html.escape(run.label)}</code>: {html.escape(run.config.preset)} "
                      f"({html.escape(run.config.objective)}, {html.escape(run.config.constraint)}) on "
                      f"{html.escape(run.config.data)}, {html.escape(str(run.path))}</li>" for run in runs)
    parts = [
        page_head(f"wganlab: {len(runs)} runs compared", 1300,
                  "td.best{background:#c8f0c8;font-weight:700}.panels{display:flex;flex-wrap:wrap;gap:8px}"
                  ".panel{text-align:center;font-size:0.85em}"),
        f"<h1>{len(runs)} runs compared</h1><ul>{listing}</ul>",
        "<h2>Final metrics (best of each row in green)</h2>", _metrics_table(runs),
        "<h2>Training curves</h2>",
        f"<img alt='training curves of every run' src='data:image/png;base64,{_curves_png(runs)}'>",
        "<h2>Samples (orange) over real data (black)</h2>", f"<div class='panels'>{''.join(panels)}</div>",
        "<h2>Config keys that differ</h2>", _config_table(runs),
        "</body></html>",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    from wganlab.util.files import atomic_write_text

    atomic_write_text(out, "\n".join(parts))
    return out
