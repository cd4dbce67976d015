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

from wganlab.constraints import CONSTRAINTS
from wganlab.data.toy import TOY_DATASETS
from wganlab.objectives import OBJECTIVES

OPTIMIZERS = ("adam", "rmsprop")
PRECISIONS = ("fp32", "bf16")


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
    # networks
    latent_dim: int = 2
    hidden: int = 128
    depth: int = 3
    generator_batch_norm: bool = False
    # data
    data: str = "ring8"
    radius: float | None = None
    sigma: float | None = None
    spacing: float | None = None
    # bookkeeping
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    log_every: int = 50
    eval_every: int = 1000  # 0: evaluate only at the end
    eval_samples: int = 2500
    w1_samples: int = 2000
    precision: str = "fp32"  # "bf16": autocast the nets' matmuls to bfloat16 (CPU and GPU), losses and penalty norms in fp32

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


_PAPER_COMMON = dict(
    latent_dim=2, hidden=512, depth=3, generator_batch_norm=False, batch_size=256,
    ema=0.0, lr_decay_fraction=0.0,
)

PRESETS: dict[str, dict[str, Any]] = {
    # Goodfellow et al. 2014 as DCGAN trains it: Adam 2e-4 (0.5, 0.999), one D step per G step.
    "gan": dict(_PAPER_COMMON, objective="minimax", constraint="none", optimizer="adam",
                lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, n_critic=1),
    "ns-gan": dict(_PAPER_COMMON, objective="non-saturating", constraint="none", optimizer="adam",
                   lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, n_critic=1),
    # Arjovsky et al. 2017, Algorithm 1: RMSProp 5e-5, c = 0.01, n_critic = 5.
    "wgan": dict(_PAPER_COMMON, objective="wasserstein", constraint="clip", clip=0.01, optimizer="rmsprop",
                 lr_g=5e-5, lr_d=5e-5, n_critic=5),
    # Gulrajani et al. 2017, Algorithm 1 with the betas of their released code: lambda 10,
    # Adam 1e-4 (0.5, 0.9), n_critic 5.
    "wgan-gp": dict(_PAPER_COMMON, objective="wasserstein", constraint="gradient-penalty", gp_weight=10.0,
                    optimizer="adam", lr_g=1e-4, lr_d=1e-4, beta1=0.5, beta2=0.9, n_critic=5),
    # The default: WGAN-GP tuned to reach sharp 2D mixtures within CPU minutes. It departs
    # from the paper in lambda 0.1 (the value of the authors' own toy script), Adam 8e-4,
    # n_critic 3, 128-unit layers, a generator EMA and a linear learning-rate decay over
    # the second half.
    "wgan-gp-2d": {},
}

_DEFAULTS = TrainConfig()
PRESET_DESCRIPTIONS = {
    "gan": "minimax GAN (saturating), Adam 2e-4 (0.5, 0.999), n_critic 1, 3x512 MLPs",
    "ns-gan": "non-saturating GAN, Adam 2e-4 (0.5, 0.999), n_critic 1, 3x512 MLPs",
    "wgan": "WGAN, weight clipping c=0.01, RMSprop 5e-5, n_critic 5, 3x512 MLPs",
    "wgan-gp": "WGAN-GP, lambda 10, Adam 1e-4 (0.5, 0.9), n_critic 5, 3x512 MLPs",
    "wgan-gp-2d": "the default: WGAN-GP tuned for 2D data (lambda 0.1, Adam 8e-4, n_critic 3, 3x128, EMA, lr decay)",
}


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and the fix."""


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(key: str, value: Any) -> Any:
    """Checks and converts ``value`` to the declared type of ``key``."""
    declared = _FIELDS[key].type
    optional = "None" in declared
    base = declared.replace(" | None", "")
    kind = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[base]
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


def validate(config: TrainConfig) -> TrainConfig:
    """Refuses a config that cannot run, before anything is written."""
    _check_choice("preset", config.preset, PRESETS)
    _check_choice("objective", config.objective, OBJECTIVES)
    _check_choice("constraint", config.constraint, CONSTRAINTS)
    _check_choice("optimizer", config.optimizer, OPTIMIZERS)
    _check_choice("data", config.data, TOY_DATASETS)
    _check_choice("precision", config.precision, PRECISIONS)
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
        ("radius", config.radius is None or config.radius > 0, "must be > 0"),
        ("sigma", config.sigma is None or config.sigma > 0, "must be > 0"),
        ("spacing", config.spacing is None or config.spacing > 0, "must be > 0"),
    ]
    for key, ok, rule in rules:
        if not ok:
            raise ConfigError(f"{key} {rule}, got {getattr(config, key)}")
    if not (config.device == "cpu" or config.device.startswith("cuda") or config.device == "mps"):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, got {config.device!r}")
    return config


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

