"""One typed training config, resolved once and saved with each run as ``config.json``.

Resolution order, later wins: the dataclass defaults, the preset, a TOML file, flags.
Unknown keys, wrong types and out-of-range values are errors that name the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from wganlab.core.constraints import CONSTRAINTS, INPUT_GRADIENT_PENALTIES, PROJECTION_ONLY
from wganlab.data.toy import TOY_DATASETS
from wganlab.core.objectives import OBJECTIVES
from wganlab.core.update_rules import UPDATE_RULES

OPTIMIZERS = ("adam", "rmsprop")
ON_NONFINITE = ("rollback", "stop")
LOGGERS = ("both", "jsonl", "tensorboard")
NETS = ("auto", "mlp", "conv")
CRITIC_NORMS = ("none", "layer", "batch")  # batch: only without an input-gradient penalty, MLP critic only
PRECISIONS = ("fp32", "bf16")
CRITIC_BACKWARDS = ("auto", "autograd")


@dataclass
class TrainConfig:
    """Everything that decides a training run.

    The defaults are the tuned 2D preset (``wgan-gp-2d``); see :data:`PRESETS` for the
    papers' settings.
    """

    preset: str = "wgan-gp-2d"
    # the game and the Lipschitz constraint
    objective: str = "wasserstein"
    constraint: str = "gradient-penalty"
    gp_weight: float = 0.1
    clip: float = 0.01
    began_gamma: float = 0.5  # BEGAN: the ratio E L(G(z)) / E L(x) that k_t holds
    began_lambda_k: float = 0.001  # BEGAN: gain of the k_t update
    # optimisation
    optimizer: str = "adam"
    lr_g: float = 8e-4
    lr_d: float = 8e-4
    beta1: float = 0.5
    beta2: float = 0.9
    n_critic: int = 3
    batch_size: int = 256
    steps: int = 3000
    max_seconds: float = 0.0  # wall-clock budget for the loop; 0 means none (steps alone decide)
    lr_decay_fraction: float = 0.5  # linear decay of both learning rates to 0 over this final fraction
    ema: float = 0.99  # generator weight EMA decay; 0 turns it off
    update_rule: str = "alternating"  # alternating | optimistic | extragradient
    unroll_steps: int = 0  # > 0: the generator sees the critic this many differentiable steps ahead
    # networks
    latent_dim: int = 2
    hidden: int = 128
    depth: int = 3
    generator_batch_norm: bool = False
    critic_norm: str = "none"  # none | layer | batch, after each hidden Linear of the MLP critic
    # data
    data: str = "ring8"
    radius: float | None = None
    sigma: float | None = None
    spacing: float | None = None
    data_dir: str = ""  # folder of the MNIST IDX files; "" is $WGANLAB_MNIST_DIR or ~/.cache/wganlab/mnist
    net: str = "auto"  # auto: conv nets for (C, 28, 28) images, MLPs otherwise | mlp | conv
    critic_norm: str = "none"  # conv critic: none | layer (never BatchNorm under a gradient penalty)
    # bookkeeping
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    log_every: int = 50
    eval_every: int = 1000  # 0: evaluate only at the end
    eval_samples: int = 2500
    w1_samples: int = 2000
    # reliability
    checkpoint_every: int = 0  # steps between checkpoints; 0: at each evaluation
    keep_checkpoints: int = 3  # the newest K checkpoints are kept
    on_nonfinite: str = "rollback"  # rollback: to the last good state with halved lrs; stop: end the run
    max_rollbacks: int = 3  # rollbacks allowed before the run stops
    ddp_static_graph: bool = False  # DDP(static_graph=True); refused with a penalty (it skips the all-reduce)
    logger: str = "both"  # where training statistics go: jsonl (metrics.jsonl), tensorboard, or both
    held_out: int = 1024  # fixed held-out batch of the critic's Wasserstein estimate at each log line
    precision: str = "fp32"  # "bf16": autocast the nets' matmuls to bfloat16 (CPU and GPU), losses and penalty norms in fp32
    # auto: plain MLP critics take their critic-step gradients from wganlab.core.critic_gradients
    # (explicit matmuls, the same mathematics); autograd: always torch.autograd
    critic_backward: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)




def _load_presets() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Reads the presets shipped as ``wganlab/presets/NAME.toml``: config keys plus a ``description``."""
    from importlib.resources import files

    presets, descriptions = {}, {}
    entries = {e.name[: -len(".toml")]: e for e in files("wganlab").joinpath("presets").iterdir()
               if e.name.endswith(".toml")}
    for name, entry in sorted(entries.items()):
        table = tomllib.loads(entry.read_text())
        descriptions[name] = str(table.pop("description", ""))
        presets[name] = table
    return presets, descriptions


# name -> config keys, and name -> one line for `wganlab presets`; one TOML file per preset
PRESETS, PRESET_DESCRIPTIONS = _load_presets()
_DEFAULTS = TrainConfig()


def preset_path(name: str):
    """The shipped TOML file of preset ``name`` (a starting point for a user's own config file)."""
    from importlib.resources import files

    _check_choice("preset", name, PRESETS)
    return files("wganlab").joinpath("presets", f"{name}.toml")


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and the fix."""


_FIELDS = {f.name: f for f in fields(TrainConfig)}


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
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            value = float(text) if base == "float" else int(text)
        except ValueError:
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
    from wganlab.data.images import IMAGE_DATASETS, is_image_source

    if data not in TOY_DATASETS and not is_image_source(data):
        raise ConfigError(f"unknown data {data!r}; choose one of: {', '.join(TOY_DATASETS + IMAGE_DATASETS)}, "
                          f"or give a .npy/.npz file or a folder of PNGs")


def validate(config: TrainConfig) -> TrainConfig:
    """Refuses a config that cannot run, before anything is written."""
    _check_choice("preset", config.preset, PRESETS)
    _check_choice("objective", config.objective, OBJECTIVES)
    _check_choice("constraint", config.constraint, CONSTRAINTS)
    _check_choice("optimizer", config.optimizer, OPTIMIZERS)
    _check_choice("on_nonfinite", config.on_nonfinite, ON_NONFINITE)
    _check_choice("logger", config.logger, LOGGERS)
    _check_data(config.data)
    _check_choice("net", config.net, NETS)
    _check_choice("update_rule", config.update_rule, UPDATE_RULES)
    _check_choice("critic_norm", config.critic_norm, CRITIC_NORMS)
    _refuse_batch_norm_with_penalty(config)
    _check_choice("precision", config.precision, PRECISIONS)
    _check_choice("critic_backward", config.critic_backward, CRITIC_BACKWARDS)
    for key, value in asdict(config).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value}")
    rules = [
        ("gp_weight", config.gp_weight >= 0, "must be >= 0 (0 disables the penalty)"),
        ("clip", config.clip > 0, "must be > 0"),
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
        ("latent_dim", config.latent_dim >= 1, "must be >= 1"),
        ("hidden", config.hidden >= 1, "must be >= 1"),
        ("depth", config.depth >= 1, "must be >= 1"),
        ("threads", config.threads >= 0, "must be >= 0 (0 keeps torch's default)"),
        ("log_every", config.log_every >= 1, "must be >= 1"),
        ("eval_every", config.eval_every >= 0, "must be >= 0 (0 evaluates only at the end)"),
        ("eval_samples", config.eval_samples >= 2, "must be >= 2"),
        ("w1_samples", config.w1_samples >= 2, "must be >= 2"),
        ("checkpoint_every", config.checkpoint_every >= 0, "must be >= 0 (0 checkpoints at each evaluation)"),
        ("keep_checkpoints", config.keep_checkpoints >= 1, "must be >= 1"),
        ("max_rollbacks", config.max_rollbacks >= 0, "must be >= 0"),
        ("held_out", config.held_out >= 1, "must be >= 1"),
        ("radius", config.radius is None or config.radius > 0, "must be > 0"),
        ("sigma", config.sigma is None or config.sigma > 0, "must be > 0"),
        ("spacing", config.spacing is None or config.spacing > 0, "must be > 0"),
        ("began_gamma", 0 < config.began_gamma <= 1, "must be in (0, 1]"),
        ("began_lambda_k", config.began_lambda_k >= 0, "must be >= 0"),
        ("unroll_steps", config.unroll_steps >= 0, "must be >= 0 (0: no unrolling)"),
    ]
    for key, ok, rule in rules:
        if not ok:
            raise ConfigError(f"{key} {rule}, got {getattr(config, key)}")
    if config.ddp_static_graph and config.constraint not in PROJECTION_ONLY:
        raise ConfigError(f"ddp_static_graph cannot be used with the {config.constraint} constraint: DDP's static "
                          f"graph skips the gradient all-reduce when a penalty's double backward runs, so ranks "
                          f"silently diverge; leave ddp_static_graph false")
    if config.unroll_steps and config.update_rule != "alternating":
        raise ConfigError(f"unroll_steps > 0 runs its own update rule; set update_rule = \"alternating\", "
                          f"got {config.update_rule!r}")
    if config.update_rule == "extragradient" and config.n_critic != 1:
        raise ConfigError(f"update_rule extragradient takes one critic step per generator step; set n_critic = 1, "
                          f"got {config.n_critic}")
    if not (config.device == "cpu" or config.device.startswith("cuda") or config.device == "mps"):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, got {config.device!r}")
    return config


def _refuse_batch_norm_with_penalty(config: TrainConfig) -> None:
    """A gradient penalty is per sample; BatchNorm makes each critic output depend on the
    whole batch, so the penalised gradient is not the critic's. Covers every critic norm key
    (``critic_norm`` of the MLP critic, and any other ``*_norm`` critic setting)."""
    if config.constraint not in INPUT_GRADIENT_PENALTIES:
        return
    for key, value in asdict(config).items():
        if key.startswith("critic") and key.endswith("norm") and value == "batch":
            raise ConfigError(f"{key} = \"batch\" cannot be combined with the {config.constraint} penalty: "
                              f"BatchNorm mixes the samples of a batch, so per-sample input gradients are wrong; "
                              f"use {key} = \"layer\" (LayerNorm) or \"none\"")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Reads a flat TOML table of config keys (a [train] table is also accepted)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    if set(table) == {"train"} and isinstance(table["train"], dict):
        table = table["train"]
    table.pop("description", None)  # a copied preset file keeps its one-line description
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
    name = preset or given.get("preset") or _DEFAULTS.preset
    _check_choice("preset", name, PRESETS)
    values = {**PRESETS[name], **given, "preset": name}
    config = TrainConfig(**{key: _coerce(key, value) for key, value in values.items()})
    return validate(config)


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuilds a saved config (``config.json``), checking it as strictly as a new one."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)} in saved config")
    return validate(TrainConfig(**{key: _coerce(key, value) for key, value in values.items()}))

