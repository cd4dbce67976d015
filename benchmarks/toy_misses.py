"""Where a 2D run's samples outside 3 sigma lie: between modes or in blobs too wide. Not a timed test.

    python benchmarks/toy_misses.py --seed 0                                   # the grid25 default
    python benchmarks/toy_misses.py --seed 1 --set depth=4 critic_depth=3 threads=1

Trains the data's default (or ``--preset``) to its step count, draws 20,000 samples and bins their
distance to the nearest mode in units of sigma (within 3, 3-5, 5-10, beyond 10: mass strung between
modes), with each mode's blob width (per-axis std of the samples within 5 sigma, over sigma; real
data: ~1) and offset (distance of their mean from the mode, over sigma), medians and maxima over
modes. docs/quality.md reads the grid25 default with it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from wganlab.cli.parser import parse_set
from wganlab.config import default_preset, resolve
from wganlab.training.loop import Trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="grid25", choices=["ring8", "grid25"])
    parser.add_argument("--preset", help="default: the data's own default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args(argv)
    overrides = parse_set(args.set)  # the CLI's --set: strings, typed by resolve
    config = resolve(args.preset or default_preset(args.data),
                     {"data": args.data, "seed": args.seed, "eval_every": 0, **overrides})
    trainer = Trainer(config)
    start = time.perf_counter()
    summary = trainer.train()
    wall = time.perf_counter() - start
    x = trainer.sample(args.samples, 123).numpy()
    means, sigma = trainer.dataset.means.numpy(), trainer.dataset.sigma
    distance = np.linalg.norm(x[:, None] - means[None], axis=2)
    nearest, r = distance.argmin(1), distance.min(1) / sigma
    blobs = [x[nearest == j] - means[j] for j in range(len(means))]
    blobs = [b[np.linalg.norm(b, axis=1) < 5 * sigma] for b in blobs]
    offsets = np.array([np.linalg.norm(b.mean(0)) / sigma if len(b) else np.nan for b in blobs])
    widths = np.array([b.std(0).mean() / sigma if len(b) > 1 else np.nan for b in blobs])
    share = {f"{lo}-{hi} sigma": round(float(((r >= lo) & (r < hi)).mean()), 5) for lo, hi in ((0, 3), (3, 5), (5, 10))}
    share["beyond 10 sigma"] = round(float((r >= 10).mean()), 5)
    print(json.dumps({"preset": config.preset, "seed": args.seed, "overrides": overrides, "steps": summary["steps"],
                      "wall_s": round(wall, 1), "modes": summary["modes_captured"],
                      "high_quality_2500": summary["high_quality_fraction"], "reverse_kl": summary["reverse_kl"],
                      **share, "blob_width_median": round(float(np.nanmedian(widths)), 3),
                      "blob_width_max": round(float(np.nanmax(widths)), 3),
                      "blob_offset_median": round(float(np.nanmedian(offsets)), 3),
                      "blob_offset_max": round(float(np.nanmax(offsets)), 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
