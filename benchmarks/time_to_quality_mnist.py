"""The MNIST rows of ``time_to_quality.py --mnist``: FID against wall time, default vs naive.

The default is ``python -m wganlab train --data mnist --max-seconds B`` as its own process: its
clock is the trainer's (evaluations included, every 1,000 steps on 2,000 samples), shifted by
the process's start-up and finish (all charged to it). The naive loop is
``naive_loop.mnist_workload`` (the example repositories' MLP WGAN-GP on MNIST, written their
way), built and trained in this process: its clock counts building it (reading the digits) and
training, and is paused while its samples are scored every ``check_every`` seconds, on the
same 2,000 held-out digits and the same evaluation network. Each seed runs the default, then
the naive loop.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from naive_loop import mnist_workload
from quality_mnist import train_whole_process

from wganlab.config import resolve
from wganlab.data import make_dataset
from wganlab.metrics.images import evaluate_images
from wganlab.runs.folder import RunFolder

BARS = (100.0, 50.0, 25.0)
MARKS = (60.0, 120.0, 300.0, 600.0, 1200.0)


def default_curve(seed: int, budget: float, out: Path) -> list[tuple[float, float]]:
    """(seconds since the process started, FID) at each evaluation of ``wganlab train --data mnist``,
    trained into the run folder ``out`` (kept: its grids/ hold the samples at each evaluation)."""
    summary = train_whole_process("mnist", budget, None, seed, out)
    process, trained = summary["process_s"], summary["wall_seconds"]
    records = RunFolder(out).read_metrics()
    overhead = max(0.0, process - trained)  # start-up and finish, charged to every evaluation
    return [(r["time"] + overhead, r["fid"]) for r in records if r.get("kind") == "eval" and "fid" in r]


def naive_curve(seed: int, budget: float, check_every: float) -> list[tuple[float, float]]:
    """(seconds of building + training, FID) every ``check_every`` seconds of the naive MNIST loop."""
    started = time.perf_counter()
    loop = mnist_workload(seed)
    dataset = make_dataset(resolve(None, {"data": "mnist"}))
    clock = time.perf_counter() - started
    curve, next_check, steps = [], check_every, 0
    while clock < budget:
        started = time.perf_counter()
        loop.train_step()
        clock += time.perf_counter() - started
        steps += 1
        if clock >= next_check or clock >= budget:
            next_check += check_every
            fid = evaluate_images(loop.sample(2000, seed=seed), dataset, seed=seed)["fid"]
            curve.append((clock, fid))
            print(f"  naive: {clock:6.1f} s, {steps} steps: FID {fid:.1f}", flush=True)
    return curve


def first_time(curve, bar: float) -> float | None:
    return next((t for t, fid in curve if fid <= bar), None)


def fid_at(curve, mark: float) -> float | None:
    """The last FID scored by ``mark`` seconds; None for a run that ended before the mark (more
    than 5% short of it), whose last FID would otherwise be shown as the mark's."""
    if not curve or curve[-1][0] < 0.95 * mark:
        return None
    seen = [fid for t, fid in curve if t <= mark]
    return seen[-1] if seen else None


def _median(values):
    """The median of the seeds that have a value (an FID at a mark a run did not last to is absent)."""
    values = [v for v in values if v is not None]
    return None if not values else statistics.median(values)


def _median_time(times):
    """The median time to a bar over all seeds, a seed that never reached it counting as later than
    any that did (dropping it would make the median optimistic); None when the median seed did not."""
    if not times:
        return None
    median = statistics.median([math.inf if t is None else t for t in times])
    return None if math.isinf(median) else median


def _fmt(value, unit="") -> str:
    return "not reached" if value is None else f"{value:.1f}{unit}"


def mnist_rows(seeds, default_budget: float, budget: float, check_every: float, plot: str | None, json_out: str | None,
               out: str = "runs/time-to-quality-mnist") -> int:
    curves = {"default": {}, "naive": {}}
    for seed in seeds:
        print(f"seed {seed}: wganlab train --data mnist, {default_budget:.0f} s ...", flush=True)
        curves["default"][seed] = default_curve(seed, default_budget, Path(out) / f"default-seed{seed}")
        print(f"seed {seed}: the naive MNIST loop, {budget:.0f} s ...", flush=True)
        curves["naive"][seed] = naive_curve(seed, budget, check_every)
    print(f"\nmedian over seeds {' '.join(map(str, seeds))}; the default ran {default_budget:.0f} s, the naive loop "
          f"{budget:.0f} s; a bar not reached counts as 'not reached' (a ratio is then a lower bound from the budget)")
    print("| loop | " + " | ".join(f"s to FID {b:g}" for b in BARS) + " | "
          + " | ".join(f"FID at {m / 60:g} min" for m in MARKS) + " |")
    print("|---|" + "---|" * (len(BARS) + len(MARKS)))
    medians = {}
    for name, label in (("default", "`wganlab train --data mnist`"), ("naive", "naive MNIST MLP loop")):
        times = [_median_time([first_time(c, b) for c in curves[name].values()]) for b in BARS]
        fids = [_median([fid_at(c, m) for c in curves[name].values()]) for m in MARKS]
        medians[name] = times
        print(f"| {label} | " + " | ".join(_fmt(t, " s") for t in times) + " | "
              + " | ".join(_fmt(f) for f in fids) + " |")
    for bar, ours, theirs in zip(BARS, medians["default"], medians["naive"]):
        if ours is not None:
            ratio = f"{theirs / ours:.1f}x" if theirs is not None else f"> {budget / ours:.1f}x"
            print(f"time to FID {bar:g}: {ratio} faster")
    if json_out:
        Path(json_out).write_text(json.dumps({k: {str(s): c for s, c in v.items()} for k, v in curves.items()}))
    if plot:
        draw(curves, plot)
    return 0


def draw(curves, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, colour, label in (("default", "tab:blue", "wganlab train --data mnist"),
                                ("naive", "tab:orange", "naive MNIST MLP loop")):
        for i, (seed, curve) in enumerate(sorted(curves[name].items())):
            axes.plot([t for t, _ in curve], [f for _, f in curve], color=colour, alpha=0.8,
                      label=label if i == 0 else None)
    axes.set_yscale("log")
    axes.set_xlabel("wall seconds, 2-core CPU")
    axes.set_ylabel("FID (evaluation network features)")
    axes.axhline(50, color="grey", lw=0.5, ls="--")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
