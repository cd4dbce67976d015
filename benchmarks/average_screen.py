"""Generator averages compared on one training run: the average never feeds back into training,
so one run can carry several and score each at the same steps.

Each extra average is ``ema_ramp`` c (the ramp min(cap, (1 + t) / (c + t)), no cap: the update at
s weighs about s^(c - 2); 10 is TF's, 3 linear in age, 2 uniform) started at ``ema_start`` s,
kept beside the run's own average (its config's, the column ``run``) and the raw generator.
Every column is scored on the same noise at each step: FID on MNIST (2,000 samples against the
held-out digits, as the run's evaluations), mode KL on stacked MNIST (10,000 samples).

    python benchmarks/average_screen.py mnist 3000 8000 23000 95000 --ramps 10 5 3 20 40
    python benchmarks/average_screen.py stacked-mnist 6000 37000 --ramps 10 5 3 --threads 1
    python benchmarks/average_screen.py mnist 8000 40000 --ramps 5 --set lr_decay_fraction=0.5

``--set KEY=VALUE`` changes the run itself (its learning-rate schedule is planned over the largest
step given, as a run of that many ``--steps``).

The FID at a step does not depend on the machine's load (a run is deterministic per step), so
two screens may run side by side at one thread each; it does depend on the CPU and the thread
count (a different matmul kernel is a different trajectory), so compare rows from one machine.
Needs MNIST: ``wganlab data fetch mnist``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from wganlab.cli.parser import parse_set  # noqa: E402
from wganlab.config import resolve  # noqa: E402
from wganlab.metrics.images import evaluate_images  # noqa: E402
from wganlab.training.ema import GeneratorAverage, delayed, warmed_ema  # noqa: E402
from wganlab.training.loop import Trainer  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="mnist | stacked-mnist (the data's default preset)")
    parser.add_argument("steps", type=int, nargs="+", help="generator steps at which every average is scored")
    parser.add_argument("--ramps", type=float, nargs="+", default=[10.0, 5.0, 3.0, 20.0])
    parser.add_argument("--starts", type=int, nargs="+", default=[1000], help="ema_start of each extra average")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config key for the run itself (e.g. lr_decay_fraction=0.5, planned over max(steps))")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    config = resolve(None, {**parse_set(args.set), "data": args.data, "eval_every": 0, "steps": max(args.steps),
                            "seed": args.seed})
    trainer = Trainer(config)
    averages = {f"ramp {ramp:g} from {start}": GeneratorAverage(trainer.generator, use_buffers=True,
                                                                multi_avg_fn=delayed(warmed_ema(1.0, ramp), start))
                for ramp in args.ramps for start in args.starts}
    stacked = args.data == "stacked-mnist"
    noise = torch.randn(10_000 if stacked else 2000, config.latent_dim,
                        generator=torch.Generator().manual_seed(config.seed))
    started = time.perf_counter()
    for target in sorted(args.steps):
        while trainer.step < target:
            trainer.advance()
            for average in averages.values():
                average.update_parameters(trainer.generator)
        row = {"step": trainer.step, "wall_s": round(time.perf_counter() - started)}  # scoring included
        nets = {"raw": trainer.generator, "run": trainer.sampler, **{k: a.module for k, a in averages.items()}}
        for name, net in nets.items():
            was_training = net.training
            net.eval()
            with torch.no_grad():
                samples = net(noise).float()
            net.train(was_training)
            scores = evaluate_images(samples, trainer.dataset, seed=config.seed)
            row[name] = round(scores["mode_kl"] if stacked else scores["fid"], 4)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
