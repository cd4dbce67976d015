"""What every experiment shares: the registry, checks, the result file and its report section.

An experiment is a function ``run(quick: bool, out: Path) -> dict`` registered under a
name. It returns :func:`result`: the claim in one sentence, the protocol it follows (paper,
figure or table, and its settings) and what was scaled down to fit a CPU, the numbered checks the claim
rests on (each a measured value, the bar it must meet and whether it met it), the figures
behind them, and the PNG plots it wrote into ``out``. ``passed`` is True only when every
check passed: a claim that does not reproduce is reported as failed, with its figures.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from wganlab.report.experiments import RESULT, section_html, write_experiments_report
from wganlab.util.files import atomic_write_text
from wganlab.util.plotting import pyplot  # noqa: F401  (the experiments import it from here)

SECTION = "section.html"


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        name: the name on the command line.
        title: one line for listings and the report.
        run: (quick, out folder) -> :func:`result` dict.
    """

    name: str
    title: str
    run: Callable[[bool, Path], dict]


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, title: str):
    def decorate(function):
        EXPERIMENTS[name] = Experiment(name, title, function)
        return function

    return decorate


def check(name: str, value, ok: bool, bar: str) -> dict:
    """One measured fact: ``value`` against ``bar`` (the criterion in words)."""
    return {"name": name, "value": value, "bar": bar, "passed": bool(ok)}


def result(claim: str, checks: list[dict], figures: dict, plots: list[str], notes: str = "", *,
           protocol: str, scaled: str) -> dict:
    """The dict an experiment returns; ``passed`` is the conjunction of its checks.

    ``protocol`` names the source the set-up follows (paper, figure or table, and its
    settings); ``scaled`` says what was shrunk to fit a 2-core CPU and by how much ("nothing"
    when nothing was). Both are required: a verdict is only about a claim on its own protocol.
    """
    if not protocol.strip() or not scaled.strip():
        raise ValueError("an experiment's result names its protocol's source and what was scaled down")
    return {"claim": claim, "passed": all(c["passed"] for c in checks), "checks": checks,
            "figures": figures, "plots": plots, "notes": notes, "protocol": protocol, "scaled": scaled}


def jsonable(value):
    """Numbers, arrays and tensors as plain JSON; NaN and Inf as strings JSON can hold."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def save_figure(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    pyplot().close(fig)
    return name


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equal-length sequences (ties get average ranks)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 3:
        raise ValueError(f"spearman needs two 1-D sequences of equal length >= 3, got {a.shape} and {b.shape}")

    def ranks(v):
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):  # average the ranks of ties
            tied = v == value
            r[tied] = r[tied].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def run_experiment(name: str, quick: bool, out: str | Path) -> dict:
    """Runs one experiment into ``out``: result.json, its PNG plots and section.html."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)} (or all)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    experiment = EXPERIMENTS[name]
    outcome = experiment.run(quick, out)
    outcome = {"name": name, "title": experiment.title, "quick": quick, **outcome}
    outcome = jsonable(outcome)
    atomic_write_text(out / RESULT, json.dumps(outcome, indent=2) + "\n")
    atomic_write_text(out / SECTION, section_html(outcome, out))
    return outcome


def run_all(quick: bool, out: str | Path, names: list[str] | None = None, echo=None) -> list[dict]:
    """Runs every experiment (or ``names``) into ``out/NAME`` and writes ``out/report.html``."""
    from wganlab.data.mnist import DataError

    out = Path(out)
    outcomes = []
    for name in names or list(EXPERIMENTS):
        try:
            outcomes.append(run_experiment(name, quick, out / name))
        except DataError as error:  # an experiment whose data is not on this machine: the rest still run
            print(f"wganlab: skipped {name}: {error}", file=sys.stderr)
            continue
        if echo is not None:
            echo(outcomes[-1])
    write_experiments_report(out, [out / o["name"] for o in outcomes])
    return outcomes


def final_metrics(configs: list) -> list[dict]:
    """Each config's final metrics (modes_captured, n_modes, high_quality_fraction, w1, ...),
    in order: the configs ``wganlab.training.sweep`` supports stacked in one process, the rest by
    ``Trainer`` one after another."""
    from wganlab.training.sweep import supports, train_configs

    stacked = [i for i, config in enumerate(configs) if supports(config)]
    rows = dict(zip(stacked, train_configs([configs[i] for i in stacked]))) if stacked else {}
    rest = [i for i in range(len(configs)) if i not in rows]
    rows.update(zip(rest, (trainer.summary() for trainer in train_runs([configs[i] for i in rest]))))
    return [rows[i] for i in range(len(configs))]


def train_runs(configs: list, callbacks_for=None) -> list:
    """Trains each config in turn and returns the finished Trainers, in order.

    The one place experiments train several networks: a batched sweep can replace this body
    without touching them. ``callbacks_for(index, config)`` gives each run its observers.
    """
    from wganlab.training.loop import Trainer

    trainers = []
    for index, config in enumerate(configs):
        trainer = Trainer(config, callbacks=callbacks_for(index, config) if callbacks_for else ())
        trainer.train()
        trainers.append(trainer)
    return trainers
