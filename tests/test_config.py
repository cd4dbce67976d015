import dataclasses
import inspect
import json
import re

import pytest

from wganlab.config import PRESETS, ConfigError, TrainConfig, from_dict, resolve, validate
from wganlab.core.constraints import CONSTRAINTS
from wganlab.core.objectives import OBJECTIVES
from wganlab.core.params import Param
from wganlab.core.update_rules import UPDATE_RULES
from wganlab.data import DATASETS


def test_presets_match_the_papers():
    gan = resolve("gan")
    assert (gan.objective, gan.constraint, gan.optimizer, gan.lr_g, gan.beta1, gan.beta2, gan.n_critic) == \
        ("minimax", "none", "adam", 2e-4, 0.5, 0.999, 1)
    assert resolve("ns-gan").objective == "non-saturating"
    wgan = resolve("wgan")
    assert (wgan.objective, wgan.constraint, wgan.clip, wgan.optimizer, wgan.lr_d, wgan.n_critic) == \
        ("wasserstein", "clip", 0.01, "rmsprop", 5e-5, 5)
    gp = resolve("wgan-gp")
    assert (gp.constraint, gp.gp_weight, gp.lr_g, gp.beta1, gp.beta2, gp.n_critic, gp.hidden, gp.depth) == \
        ("gradient-penalty", 10.0, 1e-4, 0.5, 0.9, 5, 512, 3)


def test_later_sources_override_earlier_ones(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "wgan"\nsteps = 77\nclip = 0.02\n')
    config = resolve(None, {"clip": 0.05, "seed": None}, path)
    assert (config.preset, config.steps, config.clip, config.seed) == ("wgan", 77, 0.05, 0)
    assert resolve("wgan-gp", {"gp_weight": "3"}).gp_weight == 3.0  # strings from --set are coerced


def test_train_table_is_accepted(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nsteps = 12\n')
    assert resolve(None, None, path).steps == 12


@pytest.mark.parametrize("overrides, message", [
    ({"gp_weight": -1.0}, "gp_weight must be >= 0"),
    ({"clip": 0.0}, "clip must be > 0"),
    ({"n_critic": 0}, "n_critic must be >= 1"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"lr_g": float("nan")}, "lr_g must be finite"),
    ({"objective": "lsgann"}, f"choose one of: {', '.join(OBJECTIVES)}"),
    ({"constraint": "sn"}, f"choose one of: {', '.join(CONSTRAINTS)}"),
    ({"began_gamma": 2.0}, re.escape("began_gamma must be in (0, 1], got 2.0")),
    ({"began_lambda_k": -0.5}, "began_lambda_k must be >= 0, got -0.5"),
    ({"radius": 0.0}, "radius must be > 0, got 0.0"),
    ({"spacing": -2.0}, "spacing must be > 0, got -2.0"),
    ({"data": "mnist2"}, "choose one of: ring8, grid25, swissroll"),
    ({"stepz": 5}, "unknown config key"),
    ({"steps": "many"}, "steps must be an integer"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"generator_batch_norm": "maybe"}, "generator_batch_norm must be true or false"),
    ({"device": "tpu"}, "device must be"),
])
def test_bad_values_are_refused_with_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(None, overrides)


def test_unknown_preset_lists_choices_and_bad_toml_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'wgan-xx'; choose one of: ") as error:
        resolve("wgan-xx")
    assert all(name in str(error.value) for name in PRESETS)
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(None, None, bad)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(None, None, tmp_path / "missing.toml")


def test_saved_config_round_trips():
    for name in PRESETS:
        config = resolve(name, {"seed": 3})
        assert from_dict(json.loads(config.to_json())) == config
    assert TrainConfig().preset == "wgan-gp-2d"


def test_presets_are_toml_files_shipped_in_the_package(tmp_path):
    from wganlab.cli.commands import preset_text
    from wganlab.config import PRESET_DESCRIPTIONS, default_preset, preset_path, read_toml

    assert list(PRESETS) == sorted(PRESETS)
    assert {"gan", "ns-gan", "wgan", "wgan-gp", "wgan-gp-2d"} <= set(PRESETS)
    for name in PRESETS:
        assert preset_path(name).is_file() and len(PRESET_DESCRIPTIONS[name]) > 20
        # a user's copy of a preset (`wganlab presets NAME > mine.toml`, description included)
        # resolves to the preset itself, also for a preset written as its base plus changes
        mine = tmp_path / f"{name}.toml"
        mine.write_text(preset_text(name))
        table = read_toml(mine)
        assert "base" not in table
        assert resolve(None, None, str(mine)) == resolve(default_preset(table.get("data", "ring8")), table)
        assert resolve(name) == resolve(None, {**table, "preset": name})
    # the default preset's file spells out the dataclass defaults
    assert resolve(None, {**read_toml(preset_path("wgan-gp-2d")), "data": "swissroll"}) == \
        resolve("wgan-gp-2d", {"data": "swissroll"})  # data with no default of its own


@pytest.mark.parametrize("table, message", [
    ('[train]\nsteps = 5\n[other]\nx = 1\n', "unknown config key(s) other, train; valid keys: preset, objective"),
    ('steps = [1, 2]\n', "steps must be an integer, got list"),
    ('hidden = { a = 1 }\n', "hidden must be an integer, got dict"),
    ('lr_g = "fast"\n', "lr_g must be a number, got 'fast'"),
    ('logger = "wandb"\n', "unknown logger 'wandb'; choose one of: both, jsonl, tensorboard"),
])
def test_toml_errors_name_the_key_and_the_valid_choices(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(table)
    with pytest.raises(ConfigError) as error:
        resolve(None, None, path)
    assert message in str(error.value)


@pytest.mark.parametrize("constraint", ["gradient-penalty", "lipschitz-penalty", "r1", "r2", "dragan"])
def test_a_penalty_with_a_batch_norm_critic_is_refused_naming_layer_norm(constraint):
    with pytest.raises(ConfigError, match=r'critic_norm = "batch" cannot be combined .* use critic_norm = "layer" '
                                          r'\(LayerNorm\)'):
        resolve(None, {"constraint": constraint, "critic_norm": "batch"})


def test_a_preset_written_as_its_base_plus_changes_has_the_bases_keys_and_its_own(tmp_path, monkeypatch):
    from importlib import resources

    from wganlab import config as config_module

    assert PRESETS["pacgan3"] == {**PRESETS["pacgan"], "pack": 3, "batch_size": 300}
    assert PRESETS["wgan-gp-2d-grid25"] == {**PRESETS["wgan-gp-2d"], "steps": 16000, "depth": 4, "critic_depth": 3,
                                            "lr_decay_clock": "budget"}
    shipped = tmp_path / "wganlab"
    (shipped / "presets").mkdir(parents=True)
    (shipped / "presets" / "a.toml").write_text('description = "a"\nbase = "b"\nsteps = 5\n')
    (shipped / "presets" / "b.toml").write_text('description = "b"\nbase = "a"\nhidden = 8\n')
    monkeypatch.setattr(resources, "files", lambda package: shipped)
    with pytest.raises(RuntimeError, match="preset [ab]: its base '[ab]' is not a preset, or a cycle"):
        config_module._load_presets()
    (shipped / "presets" / "b.toml").write_text('description = "b"\nhidden = 8\nsteps = 9\n')
    presets, descriptions, _ = config_module._load_presets()
    assert presets == {"a": {"hidden": 8, "steps": 5}, "b": {"hidden": 8, "steps": 9}}
    assert descriptions["a"] == "a"  # descriptions and default_for are each file's own


def test_batch_norm_critic_without_a_penalty_and_layer_norm_with_one_are_accepted():
    assert resolve("wgan", {"critic_norm": "batch"}).critic_norm == "batch"
    assert resolve("hinge", {"critic_norm": "batch"}).constraint == "spectral-norm"
    assert resolve(None, {"critic_norm": "layer"}).constraint == "gradient-penalty"


def test_new_presets_carry_the_published_settings():
    unrolled = resolve("unrolled")
    assert (unrolled.unroll_steps, unrolled.objective, unrolled.lr_d, unrolled.beta1, unrolled.batch_size,
            unrolled.latent_dim, unrolled.hidden, unrolled.depth) == (5, "minimax", 1e-4, 0.5, 512, 256, 128, 2)
    began = resolve("began")
    assert (began.objective, began.began_gamma, began.began_lambda_k, began.lr_g) == ("began", 0.5, 0.001, 1e-4)
    ttur = resolve("ttur")
    assert (ttur.lr_d, ttur.lr_g, ttur.n_critic) == (3e-4, 1e-4, 1)
    hinge = resolve("hinge")
    assert (hinge.objective, hinge.constraint, hinge.beta1, hinge.beta2, hinge.n_critic) == \
        ("hinge", "spectral-norm", 0.0, 0.9, 5)
    assert resolve("r1").constraint == "r1" and resolve("r1").gp_weight == 10.0
    assert resolve("optimistic").update_rule == "optimistic"
    assert resolve("extragradient").update_rule == "extragradient"
    assert resolve("wgan-lp").constraint == "lipschitz-penalty"
    assert resolve("dragan").constraint == "dragan"


@pytest.mark.parametrize("overrides, message", [
    ({"update_rule": "adamw"}, "choose one of: alternating, optimistic, extragradient"),
    ({"critic_norm": "group"}, "choose one of: none, layer, batch"),
    ({"update_rule": "extragradient", "n_critic": 3}, "set n_critic = 1"),
    ({"unroll_steps": 2, "update_rule": "optimistic"}, 'set update_rule = "alternating"'),
    ({"unroll_steps": -1}, "unroll_steps must be >= 0"),
    ({"began_gamma": 0.0}, "began_gamma must be in"),
])
def test_bad_update_rule_and_norm_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(None, overrides)


def test_every_key_declares_its_help_and_the_choices_come_from_the_registries():
    specs = {spec.name: spec for spec in dataclasses.fields(TrainConfig)}
    assert all(isinstance(spec.metadata.get("help"), str) and len(spec.metadata["help"]) > 5 for spec in specs.values())
    assert specs["objective"].metadata["choices"] is OBJECTIVES
    assert specs["constraint"].metadata["choices"] is CONSTRAINTS
    assert specs["update_rule"].metadata["choices"] is UPDATE_RULES
    assert specs["data"].metadata["choices"] is DATASETS
    with_choices = {name for name, spec in specs.items() if "choices" in spec.metadata}
    assert with_choices == {"objective", "constraint", "optimizer", "update_rule", "critic_norm", "data", "net",
                            "on_nonfinite", "logger", "precision", "critic_backward", "lr_decay_clock"}
    for name in with_choices - {"data"}:  # each declared choice is accepted, a name outside them is refused
        config = TrainConfig(constraint="clip")  # no penalty, so that critic_norm "batch" is allowed
        for choice in specs[name].metadata["choices"]:
            validate(dataclasses.replace(config, **{name: choice, "n_critic": 1}))
        with pytest.raises(ConfigError, match=f"unknown {name} 'bogus'"):
            validate(dataclasses.replace(config, **{name: "bogus"}))


def test_critic_norm_is_declared_once_covering_both_critics():
    source = inspect.getsource(TrainConfig)
    assert len(re.findall(r"^\s+critic_norm\s*:", source, flags=re.MULTILINE)) == 1
    names = [spec.name for spec in dataclasses.fields(TrainConfig)]
    assert names.index("critic_norm") == names.index("generator_batch_norm") + 1  # where config.json has it
    text = {spec.name: spec for spec in dataclasses.fields(TrainConfig)}["critic_norm"].metadata["help"]
    assert "MLP" in text and "conv" in text
    assert TrainConfig().critic_norm == "none"


def test_registry_parameter_rules_are_read_from_the_declarations(monkeypatch):
    assert resolve("wgan", {"clip": 0.5}).clip == 0.5
    stricter = dataclasses.replace(CONSTRAINTS["clip"], params=(Param("clip", lambda v: v < 0.1, "must be < 0.1"),))
    monkeypatch.setitem(CONSTRAINTS, "clip", stricter)
    with pytest.raises(ConfigError, match=r"clip must be < 0\.1, got 0\.5"):
        resolve("wgan", {"clip": 0.5})
    new = dataclasses.replace(OBJECTIVES["began"], params=(Param("ema", lambda v: v == 0, "must be 0 here"),))
    monkeypatch.setitem(OBJECTIVES, "began", new)
    with pytest.raises(ConfigError, match="ema must be 0 here, got 0.5"):
        resolve(None, {"ema": 0.5})


def test_gp_weight_zero_and_unset_data_parameters_pass():
    assert resolve(None, {"gp_weight": 0.0, "began_gamma": 1.0, "began_lambda_k": 0.0}).gp_weight == 0.0
    assert resolve(None, {"radius": None, "sigma": 0.2}).sigma == 0.2


def test_ddp_static_graph_is_refused_exactly_with_constraints_that_add_a_penalty():
    for name, entry in CONSTRAINTS.items():
        overrides = {"constraint": name, "ddp_static_graph": True}
        if entry.adds_penalty:
            with pytest.raises(ConfigError, match="ddp_static_graph cannot be used"):
                resolve(None, overrides)
        else:
            assert resolve(None, overrides).ddp_static_graph is True


def test_grid25_without_a_preset_starts_from_the_preset_tuned_for_it():
    from wganlab.config import DATA_DEFAULT_PRESETS, PRESETS

    assert DATA_DEFAULT_PRESETS == {"grid25": "wgan-gp-2d-grid25", "ring8": "wgan-gp-2d-ring8", "mnist": "wgan-gp-images",
                                    "digits": "wgan-gp-images", "images": "wgan-gp-images",
                                    "stacked-mnist": "wgan-gp-images-stacked"}
    grid = resolve(None, {"data": "grid25"})
    assert grid.preset == "wgan-gp-2d-grid25" and grid.steps == 16000
    # ring8's: the default, only longer; grid25's also a deeper generator, decayed by steps or budget
    assert {k: v for k, v in PRESETS["wgan-gp-2d-ring8"].items() if k != "steps"} == PRESETS["wgan-gp-2d"]
    changed = {k for k, v in PRESETS["wgan-gp-2d-grid25"].items() if PRESETS["wgan-gp-2d"].get(k) != v}
    assert changed == {"steps", "depth", "critic_depth", "lr_decay_clock"} and grid.depth == 4
    assert resolve(None, {}).preset == resolve(None, {"data": "ring8"}).preset == "wgan-gp-2d-ring8"
    assert resolve(None, {"data": "ring8"}).steps == 6000 and resolve(None, {"data": "swissroll"}).preset == "wgan-gp-2d"
    assert resolve("wgan-gp-2d", {"data": "grid25"}).steps == 3000  # a named preset wins
    assert resolve(None, {"data": "grid25", "preset": "wgan"}).preset == "wgan"
