"""How often does each doctor detector fire where it should, and where it should not?

Trains a set of labelled runs (each label set is the failures its setting produces by
construction, fixed before looking at the doctor's output), runs every detector over each
run's metric stream, and prints per detector: true positives (fired on a run labelled with
it), false negatives (labelled, did not fire) and false positives (fired on a run not
labelled with it), as a Markdown table.

    OMP_NUM_THREADS=1 python benchmarks/doctor_eval.py --cache runs/doctor-eval
    OMP_NUM_THREADS=1 python benchmarks/doctor_eval.py --cache runs/doctor-eval --only healthy

Records are cached per run in ``--cache`` (one .jsonl per run); a cached run is not retrained,
so the detectors can be re-scored on the same streams.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from wganlab.config import resolve  # noqa: E402
from wganlab.observe.doctor import DETECTORS, Doctor, context_of, diagnose  # noqa: E402
from wganlab.training.loop import NonFiniteError, Trainer  # noqa: E402

FAST_EVAL = dict(eval_samples=1000, w1_samples=500)

# name -> (preset, overrides, labels)
RUNS: dict[str, tuple[str, dict, set]] = {}
for seed in range(5):
    # the default, full length: the healthy reference (8/8 modes, >= 90% high quality on every seed)
    RUNS[f"healthy-default-s{seed}"] = ("wgan-gp-2d", dict(seed=seed), set())
    # the default cut to 300 steps, as the test suite runs it: unfinished, but not failing
    RUNS[f"healthy-short-s{seed}"] = ("wgan-gp-2d", dict(seed=seed, steps=300, log_every=25, eval_every=100,
                                                         **FAST_EVAL), set())
for seed in range(3):
    # saturating minimax loss against a discriminator with 10 steps at 100x the generator's rate
    RUNS[f"minimax-strong-d-s{seed}"] = ("gan", dict(seed=seed, hidden=32, depth=3, n_critic=10, lr_d=2e-3,
                                                     lr_g=2e-5, batch_size=64, steps=60, log_every=5, eval_every=0,
                                                     **FAST_EVAL),
                                         {"vanishing_gradient", "discriminator_overpowering"})
    # non-saturating GAN whose generator learns 10x faster than its discriminator
    RUNS[f"ns-gan-fast-g-s{seed}"] = ("ns-gan", dict(seed=seed, hidden=64, depth=3, lr_d=2e-4, lr_g=2e-3,
                                                     batch_size=128, steps=300, log_every=25, eval_every=100,
                                                     **FAST_EVAL), {"mode_collapse"})
    # weight clipping with c = 0.1 on an 8-layer critic (Gulrajani et al. 2017, Fig. 1b)
    RUNS[f"clip-0.1-deep-s{seed}"] = ("wgan", dict(seed=seed, clip=0.1, depth=8, hidden=128, batch_size=64,
                                                   steps=100, log_every=10, eval_every=0, **FAST_EVAL),
                                      {"exploding_gradients", "lipschitz_violation", "oscillation"})
    # a Wasserstein critic with no constraint at all: its slope and weights grow without bound
    RUNS[f"wgan-unconstrained-s{seed}"] = ("wgan-gp-2d", dict(seed=seed, constraint="none", steps=200,
                                                              log_every=10, eval_every=0, **FAST_EVAL),
                                           {"oscillation", "lipschitz_violation", "exploding_gradients"})
    # a critic that learns 80x slower than the generator, one step per generator step
    RUNS[f"slow-critic-s{seed}"] = ("wgan-gp-2d", dict(seed=seed, lr_d=1e-5, n_critic=1, steps=300, log_every=25,
                                                       eval_every=100, **FAST_EVAL),
                                    {"critic_not_optimal", "oscillation"})
# a learning rate that overflows
RUNS["overflow-s0"] = ("wgan-gp-2d", dict(seed=0, constraint="none", lr_d=50.0, lr_g=50.0, optimizer="rmsprop",
                                          steps=100, log_every=5, eval_every=0, **FAST_EVAL),
                       {"non_finite", "exploding_gradients", "oscillation", "lipschitz_violation"})


def train_records(name: str, cache: Path) -> tuple[list[dict], dict]:
    file = cache / f"{name}.jsonl"
    preset, overrides, _ = RUNS[name]
    config = resolve(preset, overrides)
    if file.is_file():
        return [json.loads(line) for line in file.read_text().splitlines()], context_of(config)
    doctor = Doctor(stream=open("/dev/null", "w"))
    trainer = Trainer(config, callbacks=[doctor])
    started = time.perf_counter()
    try:
        trainer.train()
    except NonFiniteError:
        pass
    print(f"  trained {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    records = [r for r in doctor.records]
    cache.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records, context_of(config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="runs/doctor-eval", help="folder of cached metric streams")
    parser.add_argument("--only", default="", help="only runs whose name contains this")
    args = parser.parse_args(argv)
    cache = Path(args.cache)
    counts = {name: {"tp": 0, "fn": 0, "fp": 0, "labelled": 0} for name in DETECTORS}
    for name, (_, _, labels) in RUNS.items():
        if args.only not in name:
            continue
        records, context = train_records(name, cache)
        fired = {f.detector: f for f in diagnose(records, context)}
        shown = ", ".join(f"{d}@{f.step}" for d, f in fired.items()) or "-"
        print(f"{name:28s} labels: {', '.join(sorted(labels)) or '-':60s} fired: {shown}")
        for detector in DETECTORS:
            if detector in labels:
                counts[detector]["labelled"] += 1
                counts[detector]["tp" if detector in fired else "fn"] += 1
            elif detector in fired:
                counts[detector]["fp"] += 1
    n_runs = sum(args.only in name for name in RUNS)
    print(f"\n| detector | runs labelled | true positives | missed | false positives (of {n_runs} runs) |")
    print("|---|---|---|---|---|")
    for detector, c in counts.items():
        print(f"| {detector} | {c['labelled']} | {c['tp']} | {c['fn']} | {c['fp']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
