"""What each subcommand does once its flags are parsed: ``train``, ``sample``, ``eval``, ..."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from wganlab.cli.parser import CONFIG_KEYS, RESUMABLE, UsageError, parse_set
from wganlab.config import PRESET_DESCRIPTIONS, TrainConfig, default_preset, resolve
from wganlab.data import DATASETS, dataset_params
from wganlab.metrics.headline import FINAL, headline_of


def _resume_config(args, overrides: dict):
    from wganlab.config import from_dict
    from wganlab.runs.folder import RunFolder

    if args.overwrite:
        raise UsageError("--resume continues a run and --overwrite replaces it; give one of them")
    if args.preset or args.config or (args.out and Path(args.out) != Path(args.resume)):
        raise UsageError("--resume takes the run's own config.json; drop --preset/--config/--out")
    changed = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE)
    if changed:
        raise UsageError(f"--resume continues the run with its own config; only "
                         f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may change "
                         f"(got {', '.join(changed)})")
    saved = RunFolder(args.resume).read_config().to_dict()
    saved.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(saved)


def data(args) -> int:
    from wganlab.data.mnist import fetch_mnist

    result = fetch_mnist(args.dir, standard=not args.no_standard)
    print(json.dumps(result, indent=2))
    return 0


def evalnet(args) -> int:
    from wganlab.data.images import mnist_dataset
    from wganlab.metrics.evalnet import save_classifier, train_classifier

    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    digits = mnist_dataset(args.data_dir)
    print(f"wganlab: training the evaluation classifier on {len(digits.labels)} digits for {args.epochs} epoch(s)",
          file=sys.stderr, flush=True)
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

    if args.n_reference is not None:
        _refuse_too_large("--n-reference", args.n_reference, args.n_reference * 784 * 4 * 4)
    dataset = make_image_dataset(args.data, args.data_dir)
    samples = read_npy(args.samples)
    result = evaluate_images(samples, dataset, n_reference=args.n_reference, seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0


def _refuse_too_large(flag: str, value: int, need: float) -> None:
    from wganlab.util.memory import human, memory_budget

    budget = memory_budget()
    if need > budget:
        raise UsageError(f"{flag} {value} needs about {human(need)} of memory, more than the {human(budget)} this "
                         f"machine can give; lower {flag}")


def doctor(args) -> int:
    from wganlab.observe.detectors import context_of, diagnose, too_short_text
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
        short = too_short_text(records, {**context_of(config), "finished": True})
        if short:  # a detector given too few lines holds nothing whatever the run did: not "no findings"
            print(f"nothing found over {steps} steps of {run.path}, but {short}")
        else:
            print(f"no findings: none of the doctor's detectors held over {steps} steps of {run.path}")
    return 0


def sweep(args) -> int:
    from wganlab.training.sweep import parse_grid, run_sweep

    overrides = {key: getattr(args, key) for key in CONFIG_KEYS if key != "seed"}
    overrides.update(parse_set(args.set))
    base = resolve(args.preset, overrides, args.config)
    grid = parse_grid(args.grid)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix != ".json":
        raise UsageError(f"--out must name a .json file, got {out}")
    print(f"wganlab: sweeping {len(args.seeds)} seed(s) x {math.prod(len(v) for v in grid.values())} setting(s) of "
          f"{base.preset} on {base.data}, {base.steps} steps each", flush=True)
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


def train(args) -> int:
    from wganlab.api import train_run
    from wganlab.runs.folder import next_run_dir
    from wganlab.training.distributed import (
        broadcast_from_rank0,
        launched_by_torchrun,
        local_device,
        process_group,
        rank,
    )

    overrides = {key: getattr(args, key) for key in CONFIG_KEYS}
    overrides.update(parse_set(args.set))
    config = _resume_config(args, overrides) if args.resume else resolve(args.preset, overrides, args.config)
    config.device = local_device(config.device)
    chosen = None  # the preset picked from the data, said once the data has loaded (an error stays one line)
    if not args.resume and args.preset is None and config.preset == default_preset(config.data) != TrainConfig.preset:
        chosen = (f"wganlab: no --preset for --data {config.data}: using {config.preset}, "
                  f"{PRESET_DESCRIPTIONS[config.preset]}")
    if not args.resume:  # a run folder names its data by absolute path: it resumes from any folder
        if config.data not in DATASETS and Path(config.data).expanduser().exists():
            config.data = str(Path(config.data).expanduser().resolve())
        if config.data_dir:
            config.data_dir = str(Path(config.data_dir).expanduser().resolve())
    if args.dry_run:
        if chosen:
            print(chosen, file=sys.stderr)
        print(config.to_json())
        return 0
    with process_group(config.device):
        if args.resume:
            out = Path(args.resume)
        else:
            out = Path(args.out) if args.out else next_run_dir("runs", _run_name(config))
            out = Path(broadcast_from_rank0(str(out)))
        callbacks = [_SayOnce(chosen)] if chosen and rank() == 0 else []
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
    shown = headline_of(summary, FINAL)
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


def sample(args) -> int:
    import numpy as np

    from wganlab.api import load_generator

    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    if out.suffix != ".npy":
        raise UsageError(f"--out must name a .npy file, got {out}")
    sampler = load_generator(args.run)
    _refuse_too_large("--n", args.n, args.n * sampler.floats_per_sample * 4 * 3)
    print(f"wganlab: drawing {args.n} samples from {args.run}", file=sys.stderr, flush=True)
    samples = sampler(args.n, seed=args.seed)
    if args.refine:
        samples = _refined(args, samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, samples)
    what = "refined (drs) " if args.refine else ""
    print(f"wrote {args.n} {what}samples of shape {tuple(samples.shape)} to {out}")
    return 0


def _run_name(config) -> str:
    """PRESET-DATA, or PRESET alone when it already names the data (wgan-gp-2d-ring8)."""
    return config.preset if config.preset.endswith(f"-{config.data}") else f"{config.preset}-{config.data}"


def _refined(args, plain):
    """--refine: the plain generator's figures first (toy data), then the refined samples' beside them."""
    from wganlab.api import refine_samples
    from wganlab.data import make_dataset
    from wganlab.runs.folder import RunFolder

    refined, stats = refine_samples(args.run, args.n, seed=args.seed, gamma=args.gamma)
    config = RunFolder(args.run).read_config()
    if config.data in DATASETS and DATASETS[config.data].kind == "toy":
        from wganlab.metrics.toy import evaluate_toy

        dataset = make_dataset(config)
        for label, samples in [("plain generator", plain), ("refined (drs)", refined)]:
            scores = evaluate_toy(samples, dataset, n_real=2000, seed=args.seed)
            print(f"{label:16s} modes {scores['modes_captured']}, high quality {scores['high_quality_fraction']:.1%}, "
                  f"reverse KL {scores['reverse_kl']:.3f}, W1 {scores['w1']:.3f}")
    print(f"refined (drs): acceptance {stats['acceptance']:.1%} of {stats['drawn']} candidates, critic calibrated "
          f"as d = {stats['calibration']['a']:.3g} f(x) + {stats['calibration']['b']:.3g}", file=sys.stderr)
    return refined


def eval(args) -> int:
    from wganlab.data.toy import make_toy

    if args.data not in DATASETS or DATASETS[args.data].kind != "toy":
        return _eval_images(args)
    from wganlab.metrics.toy import evaluate_toy, load_samples

    dataset = make_toy(args.data, **{key: getattr(args, key) for key in dataset_params()})
    if args.w1_samples < 2:
        raise UsageError(f"--w1-samples must be >= 2, got {args.w1_samples}")
    _refuse_too_large("--w1-samples", args.w1_samples, 2 * 8 * args.w1_samples ** 2)
    samples = load_samples(args.samples)
    result = evaluate_toy(samples, dataset, n_real=args.w1_samples, seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0


def presets(args) -> int:
    if args.name:
        print(preset_text(args.name), end="")
        return 0
    for name, text in PRESET_DESCRIPTIONS.items():
        print(f"{name:12s} {text}")
    return 0


def preset_text(name: str) -> str:
    """Preset ``name`` as a config file: its own file, or for one written as ``base`` plus changes,
    every key spelled out (so that the text is a config file of that preset on its own)."""
    import json

    from wganlab.config import PRESETS, preset_path, tomllib

    text = preset_path(name).read_text()
    if "base" not in tomllib.loads(text):
        return text
    own = [line for line in text.splitlines() if line.startswith("#")]
    lines = [f"# {name} (wganlab/presets/{name}.toml, its base's keys merged in)", *own,
             f"description = {json.dumps(PRESET_DESCRIPTIONS[name])}"]
    return "\n".join(lines + [f"{key} = {json.dumps(value)}" for key, value in PRESETS[name].items()]) + "\n"


def experiment(args) -> int:
    from wganlab.experiments import EXPERIMENTS, run_all, run_experiment, write_experiments_report
    from wganlab.experiments.base import cpu_count, threads_per_job

    if args.name == "list":
        for name, experiment in EXPERIMENTS.items():
            print(f"{name:20s} {experiment.title}")
        return 0

    def echo(outcome: dict) -> None:
        verdict = "passed" if outcome["passed"] else "FAILED"
        print(f"{outcome['name']}: {verdict} ({outcome['wall_seconds']:.0f} s): {outcome['claim']}")
        for item in outcome["checks"]:
            print(f"  [{'ok' if item['passed'] else 'FAIL'}] {item['name']}: {item['value']} (bar: {item['bar']})",
                  flush=True)  # an hour-long `all` shows each result as it comes

    if args.jobs < 0:
        raise UsageError(f"--jobs must be >= 0 (0: one per core), got {args.jobs}")
    if args.name == "all":
        out = Path(args.out or "runs/experiments")
        jobs = min(args.jobs or cpu_count(), len(EXPERIMENTS))
        at_once = f", {jobs} at a time with {threads_per_job(jobs)} thread(s) each" if jobs > 1 else ""
        print(f"wganlab: running all {len(EXPERIMENTS)} experiments{' (quick)' if args.quick else ''} into {out}"
              f"{at_once}", flush=True)
        outcomes = run_all(args.quick, out, echo=echo, jobs=jobs)
        failed = [o["name"] for o in outcomes if not o["passed"]]
        print(f"{len(outcomes) - len(failed)} of {len(outcomes)} claims reproduced"
              + (f"; not reproduced: {', '.join(failed)}" if failed else ""))
        print(f"report: {out / 'report.html'}")
        return 0  # a claim that does not reproduce is a finding, reported in the results, not an error
    if args.name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {args.name!r}; choose one of: {', '.join(EXPERIMENTS)}, all, list")
    out = Path(args.out or Path("runs/experiments") / args.name)
    print(f"wganlab: running experiment {args.name}{' (quick)' if args.quick else ''} into {out}", flush=True)
    echo(run_experiment(args.name, args.quick, out))
    report = write_experiments_report(out, [out])
    print(f"result: {out / 'result.json'}   report: {report}")
    return 0


def compare(args) -> int:
    from wganlab.report.compare import write_comparison

    out = write_comparison(args.runs, args.out)
    print(f"compared {len(args.runs)} runs: {out}")
    return 0


class _SayOnce:
    """A Trainer callback printing one line to stderr with the run's first record."""

    def __init__(self, line: str):
        self.line = line

    def on_record(self, trainer, record: dict) -> None:
        if self.line:
            print(self.line, file=sys.stderr, flush=True)
            self.line = ""

