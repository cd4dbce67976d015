"""Sample quality of each preset on the 2D mixtures, over seeds: not a timed test.

    python benchmarks/quality_toy.py                       # every preset, ring8 and grid25, seeds 0-4
    python benchmarks/quality_toy.py --presets wgan-gp-2d --data ring8

Each run trains for the preset's own step count, cut at ``--budget`` wall seconds (the
paper presets' 3x512 nets would otherwise take many minutes each on a CPU), and is scored
by the PacGAN protocol: modes captured, high-quality fraction, reverse KL, and the exact
W1 by optimal transport. Prints one row per run and a mean row per preset and dataset,
and checks the default preset against the bar on ring8: 8/8 modes, >= 90% high quality,
reverse KL <= 0.1 for every seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from wganlab.config import PRESETS, resolve
from wganlab.training.loop import Trainer

BAR = dict(modes=8, high_quality=0.90, reverse_kl=0.1)


def run_one(preset: str, data: str, seed: int, budget: float) -> dict:
    config = resolve(preset, {"data": data, "seed": seed, "max_seconds": budget, "eval_every": 0})
    summary = Trainer(config).train()
    return {"preset": preset, "data": data, "seed": seed, "modes": summary["modes_captured"],
            "n_modes": summary["n_modes"], "hq": summary["high_quality_fraction"],
            "rkl": summary["reverse_kl"], "w1": summary["w1"], "steps": summary["steps"],
            "seconds": summary["wall_seconds"]}


def _row(r: dict) -> str:
    rkl = "  n/a " if r["rkl"] is None else f"{r['rkl']:6.3f}"
    return (f"| {r['preset']:10s} | {r['data']:6s} | {str(r['seed']):4s} | {r['modes']:5.1f}/{r['n_modes']:<2d} | "
            f"{100 * r['hq']:5.1f} | {rkl} | {r['w1']:6.3f} | {r['steps']:6.0f} | {r['seconds']:6.1f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--data", nargs="+", default=["ring8", "grid25"], choices=["ring8", "grid25"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=float, default=120.0, help="wall seconds per run (default 120)")
    parser.add_argument("--json", help="also write every row to this JSON file")
    args = parser.parse_args(argv)

    print("| preset     | data   | seed | modes    | HQ %  | rev KL | W1     | steps  | wall s |")
    print("|------------|--------|------|----------|-------|--------|--------|--------|--------|")
    rows, means = [], []
    for data in args.data:
        for preset in args.presets:
            group = []
            for seed in args.seeds:
                row = run_one(preset, data, seed, args.budget)
                print(_row(row), flush=True)
                group.append(row)
            rows += group
            kls = [r["rkl"] for r in group if r["rkl"] is not None]
            mean = {"preset": preset, "data": data, "seed": "mean", "n_modes": group[0]["n_modes"],
                    **{k: statistics.fmean(r[k] for r in group) for k in ("modes", "hq", "w1", "steps", "seconds")},
                    "rkl": statistics.fmean(kls) if len(kls) == len(group) else None}
            means.append(mean)
            print(_row(mean), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"runs": rows, "means": means, "budget": args.budget}, handle, indent=2)

    default = [r for r in rows if r["preset"] == "wgan-gp-2d" and r["data"] == "ring8"]
    if default:
        failing = [r["seed"] for r in default if not (r["modes"] >= BAR["modes"] and r["hq"] >= BAR["high_quality"]
                                                      and r["rkl"] is not None and r["rkl"] <= BAR["reverse_kl"])]
        verdict = "meets" if not failing else f"MISSES (seeds {failing})"
        print(f"\ndefault preset on ring8 {verdict} the bar: 8/8 modes, >= 90% high quality, reverse KL <= 0.1")
        return 0 if not failing else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
