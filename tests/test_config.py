import json

import pytest

from wganlab.config import PRESETS, ConfigError, TrainConfig, from_dict, resolve


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
    ({"objective": "lsgann"}, "choose one of: minimax, non-saturating, wasserstein, lsgan, hinge, began"),
    ({"constraint": "sn"}, "choose one of: none, gradient-penalty, clip, lipschitz-penalty, r1, r2, dragan, spectral-norm"),
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
    with pytest.raises(ConfigError, match="choose one of: gan, ns-gan, wgan, wgan-gp"):
        resolve("wgan-xx")
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
