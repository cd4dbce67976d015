"""Command line: ``wganlab train | sample | eval | presets | sweep``.

Every error a user can cause ends in one line on stderr naming the problem and the fix,
and exit status 2; nothing is written before the config and the inputs are checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wganlab.config import PRESET_DESCRIPTIONS, PRESETS, ConfigError, resolve
from wganlab.data.toy import TOY_DATASETS

# config key -> (type, help) for the knobs that have their own flag (--lr-g sets lr_g)
_TRAIN_FLAGS = {
    "objective": (str, "minimax | non-saturating | wasserstein"),
    "constraint": (str, "Lipschitz constraint: none | gradient-penalty | clip"),
    "data": (str, "ring8 | grid25 | swissroll"),
    "steps": (int, "generator steps"),
    "max_seconds": (float, "stop after this many wall seconds (0: no limit)"),
    "seed": (int, "seed of initialisation, data, noise and evaluation"),
    "batch_size": (int, "samples per batch"),
    "hidden": (int, "units per hidden layer of both nets"),
    "depth": (int, "hidden layers of both nets"),
    "latent_dim": (int, "dimension of the generator's noise z"),
    "lr_g": (float, "generator learning rate"),
    "lr_d": (float, "critic learning rate (a different value gives TTUR)"),
    "beta1": (float, "Adam beta1"),
    "beta2": (float, "Adam beta2"),
    "optimizer": (str, "adam | rmsprop"),
    "n_critic": (int, "critic steps per generator step"),
    "gp_weight": (float, "gradient penalty lambda"),
    "clip": (float, "weight clipping bound c"),
    "ema": (float, "generator weight EMA decay (0: off)"),
    "lr_decay_fraction": (float, "final fraction of steps over which learning rates decay linearly to 0"),
    "eval_every": (int, "evaluate every N steps (0: only at the end)"),
    "log_every": (int, "append training statistics every N steps"),
    "eval_samples": (int, "samples scored at each evaluation"),
    "w1_samples": (int, "samples in the exact W1 computation"),
    "device": (str, "cpu | cuda | cuda:N"),
    "threads": (int, "torch CPU threads (0: torch's default)"),
    "radius": (float, "ring radius (ring8)"),
    "sigma": (float, "mixture component standard deviation / swiss roll noise"),
    "spacing": (float, "grid spacing (grid25)"),
    "precision": (str, "fp32 | bf16 (bf16 autocast of the nets, losses and penalty norms in fp32)"),
}


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line plus the usage hint, status 2
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _parse_set(items: list[str]) -> dict:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        values[key.strip().replace("-", "_")] = value
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wganlab", description="Train GANs stably and measure why they fail.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a GAN and write a run folder with a report")
    train.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (default wgan-gp-2d)")
    train.add_argument("--config", metavar="FILE.toml", help="a TOML file of config keys")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key (repeatable)")
    for key, (kind, text) in _TRAIN_FLAGS.items():
        train.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None, help=text)
    train.add_argument("--out", help="run folder (default runs/NNNNN-PRESET-DATA)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    sample = sub.add_parser("sample", help="draw samples from a trained run's generator")
    sample.add_argument("--run", required=True, help="run folder")
    sample.add_argument("--n", type=int, default=2500)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="output .npy file")

    evaluate = sub.add_parser("eval", help="score a .npy file of samples against a built-in distribution")
    evaluate.add_argument("--data", required=True, help=f"one of: {', '.join(TOY_DATASETS)}")
    evaluate.add_argument("--samples", required=True, help=".npy file of shape (N, D)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the real samples W1 is measured against")
    evaluate.add_argument("--w1-samples", type=int, default=2000)
    for key in ("radius", "sigma", "spacing"):
        evaluate.add_argument("--" + key, type=float, default=None)

    sub.add_parser("presets", help="list the presets")
    _add_sweep_parser(sub)
    return parser


def _add_sweep_parser(sub) -> None:
    sweep = sub.add_parser("sweep", help="train seeds x hyperparameters as stacked runs in one process")
    sweep.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (default wgan-gp-2d)")
    sweep.add_argument("--config", metavar="FILE.toml", help="a TOML file of config keys")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    for key, (kind, text) in _TRAIN_FLAGS.items():
        if key != "seed":
            sweep.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None, help=text)
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every grid point (default 0)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="values of a config key to cross with the others (repeatable)")
    sweep.add_argument("--out", help="also write the rows to this .json file")


def _sweep(args) -> int:
    from wganlab.sweep import parse_grid, run_sweep

    overrides = {key: getattr(args, key) for key in _TRAIN_FLAGS if key != "seed"}
    overrides.update(_parse_set(args.set))
    base = resolve(args.preset, overrides, args.config)
    grid = parse_grid(args.grid)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix != ".json":
        raise UsageError(f"--out must name a .json file, got {out}")
    rows = run_sweep(base, seeds=args.seeds, grid=grid)
    keys = ["seed", *grid]
    print("| " + " | ".join(keys) + " | modes | high quality % | reverse KL | W1 | W estimate |")
    print("|" + "---|" * (len(keys) + 5))
    for row in rows:
        def number(value, digits=3):
            return "n/a" if value is None else f"{value:.{digits}f}"
        hq = row["high_quality_fraction"]
        print("| " + " | ".join(str(row.get(k, "")) if k == "seed" else f"{row[k]:g}" for k in keys)
              + f" | {row['modes_captured']}/{row.get('n_modes', '?')} | {number(hq and 100 * hq, 1)} | "
              + f"{number(row['reverse_kl'])} | {number(row['w1'])} | {number(row['w_estimate'])} |")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=2))
        print(f"wrote {len(rows)} rows to {out}")
    return 0


def _train(args) -> int:
    from wganlab.api import train_run
    from wganlab.runfolder import next_run_dir

    overrides = {key: getattr(args, key) for key in _TRAIN_FLAGS}
    overrides.update(_parse_set(args.set))
    config = resolve(args.preset, overrides, args.config)
    if args.dry_run:
        print(config.to_json())
        return 0
    out = Path(args.out) if args.out else next_run_dir("runs", f"{config.preset}-{config.data}")
    summary = train_run(config, out, overwrite=args.overwrite, progress=not args.no_progress)
    shown = {k: summary[k] for k in ("modes_captured", "n_modes", "high_quality_fraction", "reverse_kl", "w1",
                                     "w_estimate", "wall_seconds") if k in summary}
    print(json.dumps(shown))
    print(f"run folder: {out}   report: {out / 'report.html'}")
    return 0


def _sample(args) -> int:
    import numpy as np

    from wganlab.api import load_generator

    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    if out.suffix != ".npy":
        raise UsageError(f"--out must name a .npy file, got {out}")
    sampler = load_generator(args.run)
    samples = sampler(args.n, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, samples)
    print(f"wrote {args.n} samples of shape {tuple(samples.shape)} to {out}")
    return 0


def _eval(args) -> int:
    from wganlab.data.toy import make_toy
    from wganlab.metrics import evaluate_toy, load_samples

    dataset = make_toy(args.data, radius=args.radius, sigma=args.sigma, spacing=args.spacing)
    if args.w1_samples < 2:
        raise UsageError(f"--w1-samples must be >= 2, got {args.w1_samples}")
    samples = load_samples(args.samples)
    result = evaluate_toy(samples, dataset, n_real=args.w1_samples, seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0


def _presets(args) -> int:
    for name, text in PRESET_DESCRIPTIONS.items():
        print(f"{name:12s} {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from wganlab.runfolder import RunFolderError
    from wganlab.trainer import NonFiniteError

    commands = {"train": _train, "sample": _sample, "eval": _eval, "presets": _presets, "sweep": _sweep}
    try:
        args = build_parser().parse_args(argv)
        return commands[args.command](args)
    except (UsageError, ConfigError, RunFolderError, ValueError) as error:
        print(f"wganlab: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteError as error:
        print(f"wganlab: training diverged: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wganlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
