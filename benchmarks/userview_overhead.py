"""What the observers cost: the same run with metrics.jsonl only, with TensorBoard, and with
the live view, interleaved so that machine load hits every variant alike.

    OMP_NUM_THREADS=1 python benchmarks/userview_overhead.py --steps 1000 --repeats 2

The order of the variants rotates from round to round. Prints the wall seconds of each run and each variant's ratio to the jsonl-only run of the
same round, plus the cost of one live-view snapshot.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from wganlab.api import train_run
from wganlab.config import resolve
from wganlab.observe.live import LiveView
from wganlab.observe.tensorboard import TensorBoardLogger
from wganlab.training.loop import Trainer


def timed_run(steps: int, logger: str, live: bool, folder: Path) -> float:
    config = resolve(None, {"steps": steps, "logger": logger, "threads": 1})
    view = LiveView(port=0).start() if live else None
    started = time.perf_counter()
    try:
        train_run(config, folder, callbacks=[view] if view else ())
    finally:
        if view is not None:
            view.stop()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--micro-only", action="store_true", help="only the per-call costs, no whole runs")
    args = parser.parse_args()
    if not args.micro_only:
        whole_runs(args)
    per_call_costs()


def whole_runs(args) -> None:
    variants = {"jsonl": ("jsonl", False), "both (tensorboard)": ("both", False), "jsonl + live": ("jsonl", True)}
    ratios = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as root:
        for round_ in range(args.repeats):
            seconds = {}
            names = list(variants)
            order = names[round_ % len(names):] + names[:round_ % len(names)]  # rotate: no variant always first
            for name in order:
                logger, live = variants[name]
                seconds[name] = timed_run(args.steps, logger, live, Path(root) / f"{round_}-{logger}-{live}")
                print(f"round {round_}: {name:20s} {seconds[name]:7.2f} s", flush=True)
            for name in variants:
                ratios[name].append(seconds[name] / seconds["jsonl"])
    for name, values in ratios.items():
        print(f"{name:20s} time / jsonl-only: {statistics.median(values):.3f} (rounds: "
              f"{', '.join(f'{v:.3f}' for v in values)})")


def per_call_costs() -> None:
    trainer = Trainer(resolve(None, {"steps": 1, "threads": 1}))
    view = LiveView(port=0)
    view.snapshot(trainer)
    started = time.perf_counter()
    for _ in range(20):
        view.snapshot(trainer)
        view._publish(trainer, "training")
    per_snapshot = (time.perf_counter() - started) / 20
    step = Trainer(resolve(None, {"steps": 50, "threads": 1, "eval_every": 0, "log_every": 50}))
    started = time.perf_counter()
    for _ in range(50):
        for _ in range(step.config.n_critic):
            step.critic_step()
        step.generator_step()
    per_step = (time.perf_counter() - started) / 50
    view._server.server_close()
    with tempfile.TemporaryDirectory() as root:
        board = TensorBoardLogger(root)
        train_record = {"kind": "train", "step": 50, **{f"stat{i}": 0.1 for i in range(12)}}  # a line's 12 figures
        started = time.perf_counter()
        for _ in range(20):
            board.on_record(step, train_record)
        per_train_line = (time.perf_counter() - started) / 20
        started = time.perf_counter()
        for _ in range(3):
            board.on_record(step, {"kind": "eval", "step": 50, "w1": 0.1})
        per_eval = (time.perf_counter() - started) / 3
        board.close()
    started = time.perf_counter()
    step.evaluate()
    evaluation = time.perf_counter() - started
    print(f"TensorBoard: {1000 * per_train_line:.2f} ms per train line, {1000 * per_eval:.0f} ms per evaluation "
          f"(2 images, 26 histograms); the evaluation itself (modes, exact W1): {1000 * evaluation:.0f} ms")
    print(f"one live snapshot + encode: {1000 * per_snapshot:.1f} ms; one training step: {1000 * per_step:.1f} ms; "
          f"snapshot per log line (every 50 steps) = {100 * per_snapshot / (50 * per_step):.1f}% of the interval")


if __name__ == "__main__":
    main()
