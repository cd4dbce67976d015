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
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
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
        seconds: the full version's wall time on 2 CPU cores as last measured, roughly: ``all``
            with several jobs starts the longest first, so none is left running alone at the end.
    """

    name: str
    title: str
    run: Callable[[bool, Path], dict]
    seconds: float = 0.0


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, title: str, seconds: float = 0.0):
    def decorate(function):
        EXPERIMENTS[name] = Experiment(name, title, function, seconds)
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
    started = time.perf_counter()
    outcome = experiment.run(quick, out)
    outcome = {"name": name, "title": experiment.title, "quick": quick, **outcome,
               "wall_seconds": round(time.perf_counter() - started, 1)}
    outcome = jsonable(outcome)
    atomic_write_text(out / RESULT, json.dumps(outcome, indent=2) + "\n")
    atomic_write_text(out / SECTION, section_html(outcome, out))
    return outcome


def run_all(quick: bool, out: str | Path, names: list[str] | None = None, echo=None, jobs: int = 1) -> list[dict]:
    """Runs every experiment (or ``names``) into ``out/NAME`` and writes ``out/report.html``.

    ``jobs`` > 1 runs that many experiments at once, each in its own process with
    ``threads_per_job(jobs)`` torch threads, the longest first (:attr:`Experiment.seconds`). The
    experiments share nothing but the CPU, so each result is what it would be alone with that
    many threads; ``echo`` sees each outcome as it finishes, and the report keeps the
    registry's order.
    """
    out = Path(out)
    names = list(names or EXPERIMENTS)
    jobs = max(1, min(jobs, len(names)))
    finished = _run_in_processes(quick, out, names, echo, jobs) if jobs > 1 else _run_here(quick, out, names, echo)
    outcomes = [finished[name] for name in names if name in finished]
    write_experiments_report(out, [out / o["name"] for o in outcomes])
    return outcomes


def threads_per_job(jobs: int) -> int:
    """torch threads for each of ``jobs`` experiment processes: the machine's cores shared out."""
    return max(1, cpu_count() // max(1, jobs))


def cpu_count() -> int:
    """The cores this process may run on (its affinity where the OS has one, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _finish(name: str, outcome_of: Callable[[], dict], finished: dict, echo) -> None:
    """Keeps ``outcome_of()`` as ``finished[name]`` and echoes it; an experiment whose data is not
    on this machine is skipped with a line, and the rest still run."""
    from wganlab.data.mnist import DataError

    try:
        finished[name] = outcome_of()
    except DataError as error:
        print(f"wganlab: skipped {name}: {error}", file=sys.stderr)
        return
    if echo is not None:
        echo(finished[name])


def _run_here(quick: bool, out: Path, names: list[str], echo) -> dict:
    finished = {}
    for name in names:
        _finish(name, lambda: run_experiment(name, quick, out / name), finished, echo)
    return finished


def _start_job(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_in_processes(quick: bool, out: Path, names: list[str], echo, jobs: int) -> dict:
    # Processes, not threads: the experiments' Python (the small nets are bound by per-op
    # dispatch) would share one interpreter lock. "spawn" starts each from a clean interpreter
    # rather than a fork of a process that may hold torch's thread pools.
    context = multiprocessing.get_context("spawn")
    longest_first = sorted(names, key=lambda name: -EXPERIMENTS[name].seconds)
    finished = {}
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_job,
                             initargs=(threads_per_job(jobs),)) as pool:
        futures = {pool.submit(run_experiment, name, quick, out / name): name for name in longest_first}
        for future in as_completed(futures):
            _finish(futures[future], future.result, finished, echo)
    return finished


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
