"""Wall time to the ring8 bar: the default ``wganlab train`` against the naive loop.

    python benchmarks/time_to_quality.py                 # seed 0, naive loop cut at 400 s
    python benchmarks/time_to_quality.py --mnist --seeds 0 1 2 --plot docs/fid-vs-time.png

The bar is the foundation issue's: 8/8 modes, >= 90% high-quality samples, reverse KL <= 0.1
(PacGAN protocol, 2,500 samples). The default run evaluates every 500 steps and its clock
includes those evaluations. The naive loop (``benchmarks/naive_loop.py``) trains the paper's
WGAN-GP (``--preset wgan-gp``: 3x512 MLPs, lambda 10, Adam 1e-4 (0.5, 0.9), n_critic 5, no
EMA) as example repositories do and is scored every ``--check-every`` seconds with its clock
paused while it is scored. Both times are printed; a loop that never reaches the bar prints
its budget as a lower bound.

``--mnist``: the image rows (``mnist_rows``): ``wganlab train --data mnist`` as a whole
process against the example repositories' MLP WGAN-GP on MNIST (``naive_loop.mnist_workload``),
on the same real digits, alternated per seed: wall time to FID 100 / 50 / 25 and each one's
FID at 1, 2, 5 and 10 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive_loop import NaiveWGANGP  # noqa: E402

from wganlab.config import resolve  # noqa: E402
from wganlab.metrics.toy import evaluate_toy  # noqa: E402
from wganlab.training.loop import Trainer  # noqa: E402


def meets_bar(result: dict) -> bool:
    return (result["modes_captured"] == result["n_modes"] and result["high_quality_fraction"] >= 0.90
            and result["reverse_kl"] is not None and result["reverse_kl"] <= 0.1)


def time_default(seed: int, device: str = "cpu") -> tuple[float | None, dict]:
    class FirstBar:
        seconds = None
        result: dict = {}

        def on_record(self, trainer, record):
            if record["kind"] == "eval" and self.seconds is None and meets_bar(record):
                self.seconds, self.result = record["time"], record

    watch = FirstBar()
    summary = Trainer(resolve(None, {"seed": seed, "eval_every": 500, "device": device}), callbacks=[watch]).train()
    return watch.seconds, watch.result or summary


def time_naive(seed: int, budget: float, check_every: float, preset: str,
               device: str = "cpu") -> tuple[float | None, dict, int]:
    config = resolve(preset, {"seed": seed, "device": device})
    loop = NaiveWGANGP(config)
    trained, next_check, steps, result = 0.0, check_every, 0, {}
    while trained < budget:
        started = time.perf_counter()
        loop.train_step()
        trained += time.perf_counter() - started
        steps += 1
        if trained >= next_check:
            next_check += check_every
            result = evaluate_toy(loop.sample(config.eval_samples, seed=seed).cpu(), loop.dataset,
                                  n_real=config.w1_samples, seed=seed)
            print(f"  naive: {trained:6.1f} s, {steps} steps: {result['modes_captured']}/8 modes, "
                  f"{100 * result['high_quality_fraction']:.1f}% HQ", flush=True)
            if meets_bar(result):
                return trained, result, steps
    return None, result, steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=400.0, help="naive loop wall seconds (default 400)")
    parser.add_argument("--check-every", type=float, default=30.0, help="score the naive loop every N s")
    parser.add_argument("--naive-preset", default="wgan-gp")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both loops)")
    parser.add_argument("--mnist", action="store_true", help="the MNIST rows (FID against wall time)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="--mnist: seeds (default: --seed)")
    parser.add_argument("--default-budget", type=float, default=1200.0,
                        help="--mnist: seconds of `wganlab train --data mnist` (default 1200: its 20-minute figure)")
    parser.add_argument("--plot", default=None, help="--mnist: draw FID against wall time into this PNG")
    parser.add_argument("--json", default=None, help="--mnist: write both curves of every seed to this file")
    args = parser.parse_args(argv)
    if args.mnist:
        from time_to_quality_mnist import mnist_rows

        budget = args.budget if "--budget" in (argv if argv is not None else sys.argv) else 600.0
        return mnist_rows(args.seeds or [args.seed], args.default_budget, budget, args.check_every, args.plot, args.json)

    seconds, result = time_default(args.seed, args.device)
    print(f"wganlab train (default preset): bar {'met at ' + format(seconds, '.1f') + ' s' if seconds else 'NOT met'}; "
          f"{result.get('modes_captured')}/8 modes, {100 * result.get('high_quality_fraction', 0):.1f}% HQ", flush=True)
    naive_seconds, naive_result, steps = time_naive(args.seed, args.budget, args.check_every, args.naive_preset,
                                                 args.device)
    if naive_seconds is None:
        print(f"naive loop ({args.naive_preset}): bar NOT met within {args.budget:.0f} s ({steps} steps; last "
              f"{naive_result.get('modes_captured')}/8 modes, {100 * naive_result.get('high_quality_fraction', 0):.1f}% HQ)")
        if seconds:
            print(f"ratio: > {args.budget / seconds:.1f}x (naive budget / default time)")
    else:
        print(f"naive loop ({args.naive_preset}): bar met at {naive_seconds:.1f} s ({steps} steps)")
        if seconds:
            print(f"ratio: {naive_seconds / seconds:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
