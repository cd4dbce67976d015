"""Image quality after a fixed CPU budget, as a user gets it: ``wganlab train --data D --max-seconds S``.

Each row is ``DATA:SECONDS[:PRESET]`` (no preset: the one chosen from the data, today
``wgan-gp-images``, and ``wgan-gp-images-stacked`` for stacked MNIST), trained as a whole process
(``python -m wganlab train``, start-up and evaluations inside the budget) for each seed, and
reported as the median over the seeds with the range. The figures are the run's own final evaluation: FID and KID in the shipped
evaluation network's features (our feature space, not Inception's: compare these numbers with
each other, not with papers' FIDs), the class histogram's KL to uniform and the classes
covered. On stacked MNIST the finished generator is then scored again on ``--stacked-samples``
samples (26,000, the PacGAN protocol: each channel classified, modes captured of 1000 and their
KL to uniform), outside the budget. The floor is the same metrics for real training images.

    python benchmarks/quality_mnist.py                                  # the issue's table, seeds 0-2 (~2 h)
    python benchmarks/quality_mnist.py --runs mnist:300 --seeds 0       # one 5-minute row

Needs MNIST: ``wganlab data fetch mnist`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from wganlab.api import load_generator  # noqa: E402
from wganlab.config import resolve  # noqa: E402
from wganlab.data import make_dataset  # noqa: E402
from wganlab.metrics.images import evaluate_images  # noqa: E402
from wganlab.runs.folder import RunFolder  # noqa: E402

COLUMNS = ("fid", "kid", "class_kl", "classes_covered", "modes_captured", "mode_kl")
GOALS = {("mnist", 300): "FID <= 15, class KL <= 0.01, 10/10", ("mnist", 1200): "FID <= 8",
         ("stacked-mnist", 1200): ">= 990 modes, KL <= 0.10"}


def floor(data: str, n: int, seed: int) -> dict:
    """n real training images against the test split: the best a generator can score."""
    dataset = make_dataset(resolve(None, {"data": data}))
    real = dataset.sample(n, torch.Generator().manual_seed(seed))
    return evaluate_images(real, dataset, seed=seed)


def train_whole_process(data: str, seconds: float, preset: str | None, seed: int, out: Path) -> dict:
    """``wganlab train`` as its own process; the run's summary plus the process's wall time."""
    command = [sys.executable, "-m", "wganlab", "train", "--data", data, "--max-seconds", str(seconds),
               "--seed", str(seed), "--out", str(out), "--overwrite", "--no-progress"]
    if preset:
        command += ["--preset", preset]
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    wall = time.perf_counter() - started
    return {**RunFolder(out).read_summary(), "process_s": wall}


def rescore_stacked(out: Path, n: int, seed: int) -> dict:
    """The finished generator on n fresh samples, each channel classified (PacGAN's 26,000)."""
    sample = load_generator(out)
    dataset = make_dataset(resolve(None, {"data": "stacked-mnist"}))
    return evaluate_images(torch.from_numpy(sample(n, seed=seed + 1)), dataset, seed=seed)


def cell(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    show = (lambda v: f"{round(v)}") if all(float(v).is_integer() or v > 1000 for v in values) else (lambda v: f"{v:.4g}")
    text = show(statistics.median(values))
    return text if len(values) == 1 or min(values) == max(values) else f"{text} ({show(min(values))}-{show(max(values))})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["mnist:300", "mnist:1200", "stacked-mnist:1200"],
                        help="DATA:SECONDS[:PRESET] rows (default: the issue's three)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--stacked-samples", type=int, default=26_000)
    parser.add_argument("--floor-samples", type=int, default=2000)
    parser.add_argument("--out", default="runs/bench-mnist")
    args = parser.parse_args(argv)

    rows = []
    for data in sorted({run.split(":")[0] for run in args.runs}):
        n = args.stacked_samples if data == "stacked-mnist" else args.floor_samples
        floor_row = floor(data, n, 0)
        rows.append((f"real training images ({data}), {n}", "-", "-", {c: [floor_row.get(c)]
                                                                                       for c in COLUMNS}))
    for run in args.runs:
        data, seconds, *preset = run.split(":")
        figures: dict[str, list] = {c: [] for c in (*COLUMNS, "steps", "process_s")}
        for seed in args.seeds:
            out = Path(args.out) / f"{data}-{seconds}s-seed{seed}"
            summary = train_whole_process(data, float(seconds), preset[0] if preset else None, seed, out)
            if data == "stacked-mnist":
                summary.update(rescore_stacked(out, args.stacked_samples, seed))
            print(json.dumps({"run": run, "seed": seed, **{k: summary.get(k) for k in figures}}), flush=True)
            for key in figures:
                figures[key].append(summary.get(key))
        label = f"`wganlab train --data {data} --max-seconds {seconds}`" + (f" --preset {preset[0]}" if preset else "")
        rows.append((label, cell(figures["steps"]), cell(figures["process_s"]), figures))

    shown = [c for c in COLUMNS if any(v is not None for *_, f in rows for v in f[c])]
    print(f"\nmedian over seeds {' '.join(map(str, args.seeds))} (range); stacked MNIST on "
          f"{args.stacked_samples} samples")
    print("| run | steps | process s | " + " | ".join(shown) + " |")
    print("|---|---|---|" + "---|" * len(shown))
    for label, steps, wall, figures in rows:
        print(f"| {label} | {steps} | {wall} | " + " | ".join(cell(figures[c]) for c in shown) + " |")
    for (data, seconds), goal in GOALS.items():
        print(f"goal for {data} at {seconds} s: {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
