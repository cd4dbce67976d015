"""One typed training config, resolved once and saved with each run as ``config.json``.

Resolution order, later wins: the dataclass defaults, the preset, a TOML file, flags.
Unknown keys, wrong types and out-of-range values are errors that name the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from wganlab.core.constraints import CONSTRAINTS
from wganlab.core.objectives import OBJECTIVES
from wganlab.core.params import Param
from wganlab.core.update_rules import UPDATE_RULES
from wganlab.data import DATASETS, holds_images, is_image_source

OPTIMIZERS, ON_NONFINITE, LOGGERS = ("adam", "rmsprop"), ("rollback", "stop"), ("both", "jsonl", "tensorboard")
NETS = ("auto", "mlp", "conv", "conv-mlp")
CRITIC_NORMS = ("none", "layer", "batch")  # batch: MLP critic only, and never under an input-gradient penalty
PRECISIONS, CRITIC_BACKWARDS = ("fp32", "bf16"), ("auto", "autograd", "compiled")

_DATA_FILES = "FILE.npy/.npz | PNG folder"  # what data accepts besides the built-in sets


def _key(default, help: str, choices=None, **more):
    """A config key: ``dataclasses.field`` with its default and its metadata: ``help`` (one
    line, for ``--help`` and the docs) and, where the key has a fixed set of values, ``choices``
    (a registry dict whose entries have a ``description``, or a tuple of names). The CLI's
    ``wganlab train`` flags and validate()'s choice checks are generated from this."""
    metadata = {"help": help, **more}
    if choices is not None:
        metadata["choices"] = choices
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that decides a training run.

    The defaults are the tuned 2D preset (``wgan-gp-2d``); see :data:`PRESETS` for the
    papers' settings. The order of the fields is the order of ``config.json``: keep it.
    """

    preset: str = _key("wgan-gp-2d", "the preset the other keys start from (see 'wganlab presets')")
    # the game and the Lipschitz constraint
    objective: str = _key("wasserstein", "the game critic and generator play", OBJECTIVES)
    constraint: str = _key("gradient-penalty", "Lipschitz constraint of the critic", CONSTRAINTS)
    gp_weight: float = _key(0.1, "penalty weight lambda (gradient-penalty, lipschitz-penalty, r1, r2, dragan)")
    clip: float = _key(0.01, "weight clipping bound c")
    began_gamma: float = _key(0.5, "BEGAN: the ratio E L(G(z)) / E L(x) that k_t holds")
    began_lambda_k: float = _key(0.001, "BEGAN: gain of the k_t update")
    # optimisation
    optimizer: str = _key("adam", "optimizer of both nets", OPTIMIZERS)
    lr_g: float = _key(8e-4, "generator learning rate")
    lr_d: float = _key(8e-4, "critic learning rate (a different value gives TTUR)")
    beta1: float = _key(0.5, "Adam beta1")
    beta2: float = _key(0.9, "Adam beta2")
    n_critic: int = _key(3, "critic steps per generator step")
    batch_size: int = _key(256, "samples per batch")
    steps: int = _key(3000, "generator steps")
    max_seconds: float = _key(0.0, "wall-clock budget of the loop in seconds (0: none, steps alone decide)")
    lr_decay_fraction: float = _key(0.5, "final fraction of steps over which both learning rates decay linearly to 0")
    lr_decay_clock: str = _key("steps", "the decay's clock: steps | budget (steps or max_seconds, whichever runs "
                               "out first: a run its budget cuts still ends decayed)", ("steps", "budget"))
    extended_from: int = _key(0, "the steps a run was planned for before a --resume extended it (0: never extended); "
                                 "its learning-rate decay is re-planned over the new steps", flag=False)
    ema: float = _key(0.99, "generator weight EMA decay (0: off)")
    ema_warmup: bool = _key(False, "ramp the EMA decay as min(ema, (1 + t) / (ema_ramp + t)) over its t-th update (as "
                            "TF's ExponentialMovingAverage with num_updates): a slow EMA drops the initial weights soon")
    ema_ramp: float = _key(10.0, "the warm-up ramp's constant c (> 1; TF's 10): until ema caps it the average weighs "
                           "update s as s^(c - 2), a mean lag of 1/c of the updates (2: uniform, 3: linear)")
    ema_start: int = _key(0, "generator steps the EMA copies the generator before it starts averaging (BigGAN's "
                             "ema_start; the warm-up ramp counts from here)")
    update_rule: str = _key("alternating", "how the players' steps interleave (unrolled: set unroll_steps)",
                            UPDATE_RULES)
    unroll_steps: int = _key(0, "> 0: the generator sees the critic this many differentiable steps ahead")
    # networks
    latent_dim: int = _key(2, "dimension of the generator's noise z")
    hidden: int = _key(128, "units per hidden layer of both nets")
    depth: int = _key(3, "hidden layers of both nets")
    generator_batch_norm: bool = _key(False, "BatchNorm after each hidden Linear of the MLP generator")
    critic_norm: str = _key("none", "critic normalisation: none | layer (LayerNorm; a per-sample GroupNorm in the "
                            "conv critic) | batch (BatchNorm: MLP critic only, never with an input-gradient "
                            "penalty)", CRITIC_NORMS)
    critic_hidden: int = _key(0, "units per hidden layer of the MLP critic (0: hidden, as the generator)")
    critic_depth: int = _key(0, "hidden layers of the MLP critic (0: depth, as the generator)")
    maxout_pieces: int = _key(0, "> 1: the MLP critic's hidden units are maxout units of this many pieces "
                              "(PacGAN's 2D discriminator: 5); 0: leaky-ReLU units")
    init_std: float = _key(0.0, "> 0: the MLP nets' weights (2D data) start N(0, init_std^2) and their biases 0 "
                           "(PacGAN: 0.02); 0: torch's default initialisation")
    pack: int = _key(1, "PacGAN packing: the critic scores this many samples concatenated, one score per pack "
                     "(1: no packing); batch_size and held_out must be multiples of it")
    # data
    data: str = _key("ring8", "training data", DATASETS, also=_DATA_FILES)
    radius: float | None = _key(None, "ring radius (ring8)")
    sigma: float | None = _key(None, "mixture component standard deviation / swiss roll noise")
    spacing: float | None = _key(None, "grid spacing (grid25)")
    data_dir: str = _key("", "folder of the MNIST IDX files (default $WGANLAB_MNIST_DIR or ~/.cache/wganlab/mnist)")
    net: str = _key("auto", "auto (conv nets for (C, 28, 28) images, MLPs otherwise) | mlp | conv | conv-mlp (a conv "
                          "generator, an MLP critic: the fast critic step with conv strokes)", NETS)
    conv_width: int = _key(64, "channels of the conv nets' widest-resolution layer: W-2W-4W (64: the WGAN-GP "
                           "MNIST code's 64-128-256)")
    # bookkeeping
    seed: int = _key(0, "seed of initialisation, data, noise and evaluation")
    device: str = _key("cpu", "cpu | cuda | cuda:N | mps")
    threads: int = _key(0, "torch intra-op CPU threads (0: torch's default)")
    log_every: int = _key(50, "append training statistics every N steps")
    eval_every: int = _key(1000, "evaluate every N steps (0: only at the end)")
    eval_samples: int = _key(2500, "samples scored at each evaluation")
    w1_samples: int = _key(2000, "samples in the exact W1 computation")
    # reliability
    checkpoint_every: int = _key(0, "steps between checkpoints (0: at each evaluation)")
    keep_checkpoints: int = _key(3, "how many of the newest checkpoints to keep")
    on_nonfinite: str = _key("rollback", "on a non-finite loss: rollback (to the last good state, halving the lrs) "
                             "| stop (end the run)", ON_NONFINITE)
    max_rollbacks: int = _key(3, "rollbacks allowed before the run stops")
    ddp_static_graph: bool = _key(False, "DDP(static_graph=True); refused with a penalty (it skips the all-reduce)")
    logger: str = _key("both", "where training statistics go: both | jsonl (metrics.jsonl) | tensorboard "
                       "(event files)", LOGGERS)
    held_out: int = _key(1024, "size of the fixed held-out batch of the critic's Wasserstein estimate at each log line")
    precision: str = _key("fp32", "fp32 | bf16 (autocast the nets' matmuls to bfloat16, CPU and GPU; losses and "
                          "penalty norms in fp32)", PRECISIONS)
    critic_backward: str = _key("auto", "auto (plain MLP critics take their critic-step gradients, and with a plain "
                                "ReLU MLP generator its step's, from explicit matmuls: core.critic_gradients, "
                                "core.generator_gradients, the same mathematics) | autograd (always torch.autograd) | "
                                "compiled (auto, its critic step through torch.compile: long runs, docs/speed.md)",
                                CRITIC_BACKWARDS)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _load_presets() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Reads the shipped ``wganlab/presets/NAME.toml``: config keys, a ``description``, optionally
    ``default_for`` (built-in data it is the default for) and ``base`` (a preset it changes)."""
    from importlib.resources import files

    descriptions, data_defaults, tables = {}, {}, {}
    entries = {e.name[: -len(".toml")]: e for e in files("wganlab").joinpath("presets").iterdir()
               if e.name.endswith(".toml")}
    for name, entry in sorted(entries.items()):
        tables[name] = table = tomllib.loads(entry.read_text())
        descriptions[name] = str(table.pop("description", ""))
        for data in table.pop("default_for", ()):  # the preset used for this data when none is named
            data_defaults[data] = name

    def keys(name: str, seen: tuple = ()) -> dict[str, Any]:  # a `base` preset's keys, then its own
        table = dict(tables[name])
        base = table.pop("base", None)
        if base is not None and (base not in tables or base in seen):
            raise RuntimeError(f"preset {name}: its base {base!r} is not a preset, or a cycle")
        return table if base is None else {**keys(base, (*seen, name)), **table}

    return {name: keys(name) for name in tables}, descriptions, data_defaults


# name -> config keys, name -> one line for `wganlab presets`, data -> the preset used for it when
# no preset is named (a preset file's `default_for`); one TOML file per preset
PRESETS, PRESET_DESCRIPTIONS, DATA_DEFAULT_PRESETS = _load_presets()
_DEFAULTS = TrainConfig()


def preset_path(name: str):
    """The shipped TOML file of preset ``name`` (a starting point for a user's own config file)."""
    from importlib.resources import files

    _check_choice("preset", name, PRESETS)
    return files("wganlab").joinpath("presets", f"{name}.toml")


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and the fix."""


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_BOOL_WORDS = dict.fromkeys(("1", "true", "yes", "on"), True) | dict.fromkeys(("0", "false", "no", "off"), False)


def _coerce(key: str, value: Any) -> Any:
    """Checks and converts ``value`` to the declared type of ``key``."""
    declared = _FIELDS[key].type
    optional = "None" in declared
    base = declared.replace(" | None", "")
    kind = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[base]
    if isinstance(value, (dict, list)):  # a TOML table or array where one value belongs
        raise ConfigError(f"{key} must be {kind}, got {type(value).__name__} {value!r}")
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} cannot be empty; give {kind}")
    if isinstance(value, str) and base != "str":
        text = value.strip()
        if optional and text.lower() in ("none", "null", ""):
            return None
        try:
            if base == "bool":
                return _BOOL_WORDS[text.lower()]
            value = float(text) if base == "float" else int(text)
        except (ValueError, KeyError):
            raise ConfigError(f"{key} must be {kind}, got {value!r}") from None
    if base == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if base == "int":
        if isinstance(value, bool) or not float(value).is_integer():
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise AssertionError(f"unhandled type {declared} for {key}")


def _check_choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {key} {value!r}; choose one of: {', '.join(choices)}")


def _check_data(data: str) -> None:
    if data not in DATASETS and not is_image_source(data):
        raise ConfigError(f"unknown data {data!r}; choose one of: {', '.join(DATASETS)}, "
                          f"or give a .npy/.npz file or a folder of PNGs")


def registry_params() -> dict[str, Param]:
    """Config key -> Param, as declared by every objective, constraint and data set (once per key)."""
    params: dict[str, Param] = {}
    for entry in (*OBJECTIVES.values(), *CONSTRAINTS.values(), *DATASETS.values()):
        for param in entry.params:
            params.setdefault(param.key, param)
    return params


def validate(config: TrainConfig) -> TrainConfig:
    """Refuses a config that cannot run, before anything is written."""
    _check_choice("preset", config.preset, PRESETS)
    for spec in fields(config):  # the choices each key declares: a registry or a tuple of names
        if "also" in spec.metadata:  # data: a built-in set, or a file or folder
            _check_data(getattr(config, spec.name))
        elif "choices" in spec.metadata:
            _check_choice(spec.name, getattr(config, spec.name), spec.metadata["choices"])
    _refuse_batch_norm_with_penalty(config)
    for key, value in asdict(config).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value}")
    for key, param in registry_params().items():  # the rules the registries' entries declare
        value = getattr(config, key)
        if not param.check(value):
            raise ConfigError(f"{key} {param.rule}, got {value}")
    rules = [
        ("lr_g", config.lr_g > 0, "must be > 0"),
        ("lr_d", config.lr_d > 0, "must be > 0"),
        ("beta1", 0 <= config.beta1 < 1, "must be in [0, 1)"),
        ("beta2", 0 <= config.beta2 < 1, "must be in [0, 1)"),
        ("n_critic", config.n_critic >= 1, "must be >= 1"),
        ("batch_size", config.batch_size >= 2, "must be >= 2"),
        ("steps", config.steps >= 1, "must be >= 1"),
        ("max_seconds", config.max_seconds >= 0, "must be >= 0 (0 means no time limit)"),
        ("lr_decay_fraction", 0 <= config.lr_decay_fraction <= 1, "must be in [0, 1]"),
        ("ema", 0 <= config.ema < 1, "must be in [0, 1) (0 turns the EMA off)"),
        ("ema_start", config.ema_start >= 0, "must be >= 0 (0: average from the first step)"),
        ("ema_ramp", config.ema_ramp > 1, "must be > 1 (1 never moves the average; TF's ramp is 10)"),
        ("latent_dim", config.latent_dim >= 1, "must be >= 1"),
        ("hidden", config.hidden >= 1, "must be >= 1"),
        ("depth", 1 <= config.depth <= 1000, "must be in 1..1000"),
        ("threads", config.threads >= 0, "must be >= 0 (0 keeps torch's default)"),
        ("log_every", config.log_every >= 1, "must be >= 1"),
        ("eval_every", config.eval_every >= 0, "must be >= 0 (0 evaluates only at the end)"),
        ("eval_samples", config.eval_samples >= 2, "must be >= 2"),
        ("w1_samples", config.w1_samples >= 2, "must be >= 2"),
        ("checkpoint_every", config.checkpoint_every >= 0, "must be >= 0 (0 checkpoints at each evaluation)"),
        ("keep_checkpoints", config.keep_checkpoints >= 1, "must be >= 1"),
        ("max_rollbacks", config.max_rollbacks >= 0, "must be >= 0"),
        ("held_out", config.held_out >= 1, "must be >= 1"),
        ("unroll_steps", config.unroll_steps >= 0, "must be >= 0 (0: no unrolling)"),
        ("pack", config.pack >= 1, "must be >= 1 (1: no packing)"),
        ("critic_hidden", config.critic_hidden >= 0, "must be >= 0 (0: hidden)"),
        ("critic_depth", config.critic_depth >= 0, "must be >= 0 (0: depth)"),
        ("maxout_pieces", config.maxout_pieces >= 0 and config.maxout_pieces != 1, "must be 0 (off) or >= 2"),
        ("init_std", config.init_std >= 0, "must be >= 0 (0: torch's default initialisation)"),
        ("critic_norm", not config.maxout_pieces or config.critic_norm == "none", "cannot be used with the "
         "maxout critic (maxout_pieces > 0 has no norm layers): set critic_norm = \"none\""),
        ("update_rule", not config.unroll_steps or config.update_rule == "alternating", "must be alternating with "
         "unroll_steps > 0 (unrolling is its own rule): set update_rule = \"alternating\""),
        ("n_critic", config.update_rule != "extragradient" or config.n_critic == 1, "must be 1 with update_rule "
         "extragradient (one critic step per generator step): set n_critic = 1"),
        ("device", config.device in ("cpu", "mps") or config.device.startswith("cuda"), "must be cpu, cuda, cuda:N "
         "or mps"),
    ]
    for key, ok, rule in rules:
        if not ok:
            raise ConfigError(f"{key} {rule}, got {getattr(config, key)!r}")
    # static graph only where `not adds_penalty`: projections and re-parametrisations, no double backward
    if config.ddp_static_graph and CONSTRAINTS[config.constraint].adds_penalty:
        raise ConfigError(f"ddp_static_graph cannot be used with the {config.constraint} constraint: DDP's static "
                          f"graph skips the gradient all-reduce when a penalty's double backward runs, so ranks "
                          f"silently diverge; leave ddp_static_graph false")
    for key in ("batch_size", "held_out"):
        if config.pack > 1 and getattr(config, key) % config.pack:
            raise ConfigError(f"{key} {getattr(config, key)} is not a multiple of pack {config.pack}: the critic "
                              f"scores packs of {config.pack} samples; give a multiple of {config.pack}")
    return config


def _refuse_batch_norm_with_penalty(config: TrainConfig) -> None:
    """A gradient penalty is per sample; BatchNorm makes each critic output depend on the
    whole batch, so the penalised gradient is not the critic's. Covers every critic norm key
    (``critic_norm`` of the MLP critic, and any other ``*_norm`` critic setting)."""
    if not CONSTRAINTS[config.constraint].penalises_input_gradients:
        return
    for key, value in asdict(config).items():
        if key.startswith("critic") and key.endswith("norm") and value == "batch":
            raise ConfigError(f"{key} = \"batch\" cannot be combined with the {config.constraint} penalty: "
                              f"BatchNorm mixes the samples of a batch, so per-sample input gradients are wrong; "
                              f"use {key} = \"layer\" (LayerNorm) or \"none\"")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Reads a flat TOML table of config keys (a [train] table is also accepted)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--config {path} is a folder; name a TOML file (see 'wganlab presets NAME' for examples)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        table = tomllib.loads(path.read_bytes().decode("utf-8"))
    except PermissionError:
        raise ConfigError(f"cannot read config file {path}: permission denied; make it readable") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text, so not TOML") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    if set(table) == {"train"} and isinstance(table["train"], dict):
        table = table["train"]
    for key in ("description", "default_for"):  # a copied preset file keeps its description and data
        table.pop(key, None)
    return table


def resolve(preset: str | None = None, overrides: dict[str, Any] | None = None,
            toml_path: str | Path | None = None) -> TrainConfig:
    """Builds and validates a config: defaults, then preset, then TOML file, then overrides.

    ``overrides`` entries whose value is None are ignored (a flag that was not given).
    """
    file_values = read_toml(toml_path) if toml_path else {}
    given = {**file_values, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    unknown = sorted(set(given) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(_FIELDS)}")
    name = preset or given.get("preset") or default_preset(given.get("data", _DEFAULTS.data))
    _check_choice("preset", name, PRESETS)
    values = {**PRESETS[name], **given, "preset": name}
    if ("latent_dim" not in given and "data" not in PRESETS[name] and IMAGE_PRESET in DATA_DEFAULT_PRESETS
            and holds_images(str(values.get("data", _DEFAULTS.data)))):
        # a 2D recipe's 2-d latent draws no images: images take the image default's latent size
        values["latent_dim"] = PRESETS[DATA_DEFAULT_PRESETS[IMAGE_PRESET]]["latent_dim"]
    config = TrainConfig(**{key: _coerce(key, value) for key, value in values.items()})
    return validate(config)


IMAGE_PRESET = "images"  # the default_for entry of the preset for image data without a preset of its own


def default_preset(data: str) -> str:
    """The preset a run on ``data`` starts from when none is named: the one tuned for that data
    (``default_for`` in its file), else for images (a built-in set, a folder, an array of
    images) the one whose ``default_for`` has "images", else the default, ``wgan-gp-2d``."""
    if data in DATA_DEFAULT_PRESETS:
        return DATA_DEFAULT_PRESETS[data]
    if IMAGE_PRESET in DATA_DEFAULT_PRESETS and holds_images(data):
        return DATA_DEFAULT_PRESETS[IMAGE_PRESET]
    return _DEFAULTS.preset


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuilds a saved config (``config.json``), checking it as strictly as a new one."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)} in saved config")
    return validate(TrainConfig(**{key: _coerce(key, value) for key, value in values.items()}))

