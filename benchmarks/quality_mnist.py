"""Image quality after a fixed CPU budget: WGAN-GP vs NS-GAN on MNIST (and stacked MNIST).

Each preset trains for ``--budget`` wall seconds (its config's ``max_seconds``) into
``--out/PRESET``, then its final samples are scored against the held-out test split:
FID and KID in the shipped evaluation network's features (our own feature space, not
Inception's: compare these numbers with each other, not with papers' FIDs), the class
histogram's KL to uniform and the classes covered; on stacked MNIST the modes captured of
1000 and their KL (PacGAN protocol). The floor is the same metrics for real training
images against the test split.

    OMP_NUM_THREADS=1 python benchmarks/quality_mnist.py --budget 1200          # the issue's 20 CPU minutes
    python benchmarks/quality_mnist.py --presets wgan-gp-stacked-mnist --budget 600 --samples 10000

Needs MNIST: ``wganlab data fetch mnist`` first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from wganlab.api import train_run  # noqa: E402
from wganlab.config import resolve  # noqa: E402
from wganlab.data import make_dataset  # noqa: E402
from wganlab.metrics.images import evaluate_images  # noqa: E402

COLUMNS = ("fid", "kid", "class_kl", "classes_covered", "modes_captured", "mode_kl")


def floor(data: str, n: int, seed: int) -> dict:
    """n real training images against the test split: the best a generator can score."""
    dataset = make_dataset(resolve(None, {"data": data}))
    real = dataset.sample(n, torch.Generator().manual_seed(seed))
    return evaluate_images(real, dataset, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["wgan-gp-mnist", "ns-gan-mnist"])
    parser.add_argument("--budget", type=float, default=1200.0, help="wall seconds of training per preset")
    parser.add_argument("--samples", type=int, default=None,
                        help="generated samples scored (default: the preset's eval_samples, 2000 MNIST / 10000 stacked)")
    parser.add_argument("--eval-every", type=int, default=0, help="0: evaluate only at the end (the budget goes to training)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/bench-mnist")
    args = parser.parse_args()

    rows = []
    for data, n in sorted({(resolve(p, {}).data, args.samples or resolve(p, {}).eval_samples) for p in args.presets}):
        started = time.perf_counter()
        rows.append({"preset": f"real train split ({data})", "steps": "-", "wall_s": "-", **floor(data, n, args.seed)})
        print(f"floor for {data}: {time.perf_counter() - started:.0f} s", flush=True)
    for preset in args.presets:
        config = resolve(preset, {"max_seconds": args.budget, "steps": 1_000_000, "seed": args.seed,
                                  "eval_samples": args.samples, "eval_every": args.eval_every,
                                  "threads": args.threads})
        print(f"training {preset} for {args.budget:.0f} s ...", flush=True)
        summary = train_run(config, Path(args.out) / preset, overwrite=True)
        rows.append({"preset": preset, "steps": summary["steps"], "wall_s": summary["wall_seconds"], **summary})
        print(json.dumps({k: summary.get(k) for k in ("steps", "wall_seconds", *COLUMNS)}), flush=True)

    shown = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]
    print("| run | steps | wall s | " + " | ".join(shown) + " |")
    print("|---|---|---|" + "---|" * len(shown))
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "-")) for c in shown]
        print(f"| {row['preset']} | {row['steps']} | {row['wall_s']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
