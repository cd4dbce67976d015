"""The image default: data-aware preset choice, honest feature spaces, and a short real-digit run
whose FID must fall."""

import math

import numpy as np
import pytest
import torch

from wganlab.cli import main
from wganlab.config import default_preset, resolve
from wganlab.data.mnist import mnist_available
from wganlab.metrics.images import feature_space, pixel_features
from wganlab.training.loop import Trainer


def test_images_without_a_preset_start_from_the_image_default_and_points_from_the_2d_one(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "digits28.npy", rng.random((30, 28, 28)).astype(np.float32))
    np.save(tmp_path / "points.npy", rng.normal(size=(30, 2)).astype(np.float32))
    assert default_preset("mnist") == default_preset("digits") == "wgan-gp-images"
    assert default_preset(str(tmp_path / "digits28.npy")) == "wgan-gp-images"
    assert default_preset(str(tmp_path)) == "wgan-gp-images"  # a folder is read as PNG images
    assert default_preset(str(tmp_path / "points.npy")) == default_preset("swissroll") == "wgan-gp-2d"
    assert default_preset("ring8") == "wgan-gp-2d-ring8"
    assert default_preset("grid25") == "wgan-gp-2d-grid25"
    config = resolve(None, {"data": "mnist"})
    assert (config.preset, config.net, config.latent_dim, config.gp_weight) == ("wgan-gp-images", "mlp", 64, 10.0)
    # stacked MNIST: the same recipe with a third critic layer and a third critic step, the only keys it changes
    stacked = resolve(None, {"data": "stacked-mnist"})
    assert default_preset("stacked-mnist") == stacked.preset == "wgan-gp-images-stacked"
    assert (stacked.critic_depth, config.critic_depth) == (3, 0)  # 0: the generator's depth, 2
    assert stacked.to_dict() == {**resolve("wgan-gp-images", {"data": "stacked-mnist"}).to_dict(),
                                 "preset": "wgan-gp-images-stacked", "critic_depth": 3, "n_critic": 3}


def test_a_2d_recipe_named_for_images_never_draws_from_a_2d_latent(tmp_path):
    np.save(tmp_path / "digits28.npy", np.random.default_rng(0).random((30, 28, 28)).astype(np.float32))
    for preset in ("wgan-gp", "wgan-gp-2d", "gan"):
        assert resolve(preset, {"data": str(tmp_path / "digits28.npy")}).latent_dim == 64
        assert resolve(preset, {"data": "mnist"}).latent_dim == 64
        assert resolve(preset, {"data": "mnist", "latent_dim": 3}).latent_dim == 3  # asked for: kept
        assert resolve(preset, {"data": "ring8"}).latent_dim == 2


def test_the_cli_names_the_image_default_it_chose(capsys):
    assert main(["train", "--data", "mnist", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "no --preset for --data mnist: using wgan-gp-images" in captured.err
    assert '"preset": "wgan-gp-images"' in captured.out


def test_a_users_images_are_scored_in_pixels_never_silently_in_the_mnist_classifiers_features(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "grey28.npy", rng.random((40, 28, 28)).astype(np.float32))
    config = resolve(None, dict(data=str(tmp_path / "grey28.npy"), steps=1, eval_every=1, eval_samples=16,
                                batch_size=8, held_out=8, hidden=16, log_every=1))
    assert Trainer(config).train()["feature_space"] == "pixels"
    assert feature_space("mnist", (1, 28, 28)) == "evalnet"
    assert feature_space("pixels", (3, 64, 48)) == "pixels-pooled-32x32"
    images = torch.zeros(2, 3, 64, 64)
    images[:, :, :32] = 1.0  # the top half white: pooling keeps the mean of each 2x2 block
    pooled = pixel_features(images).view(2, 3, 32, 32)
    assert pooled.shape == (2, 3, 32, 32) and pooled[:, :, :16].eq(1).all() and pooled[:, :, 16:].eq(0).all()
    assert pixel_features(torch.ones(2, 1, 8, 8)).shape == (2, 64)


@pytest.mark.skipif(not mnist_available(), reason="MNIST not fetched: run 'wganlab data fetch mnist'")
def test_the_image_default_halves_its_fid_in_200_steps_on_real_digits():
    # the EMA starts at step 1,000 (ema_start): averaged from the first step it lagged, 0.525 of
    # step 0's FID at 200 steps (781 / 1486, seed 0); unaveraged 0.44 (653 / 1486); with bf16 and
    # batch 256 0.39 (581 / 1486; seed 1: 582 / 1495)
    config = resolve(None, dict(data="mnist", steps=200, eval_every=200, log_every=100, threads=2, seed=0))
    trainer = Trainer(config)
    before = trainer.evaluate()["fid"]
    after = trainer.train()["fid"]
    assert math.isfinite(before) and after <= before / 2, (before, after)


def test_the_warmed_ema_follows_its_ramp_and_a_plain_ema_is_unchanged():
    from wganlab.training.ema import delayed, warmed_ema

    average, current = [torch.zeros(3)], [torch.ones(3)]
    update = warmed_ema(0.999)
    expected = 0.0
    for t in range(1, 40):  # AveragedModel hands the count of updates so far
        decay = min(0.999, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay)
        update(average, current, torch.tensor(t))
    assert torch.allclose(average[0], torch.full((3,), expected), atol=1e-6) and expected > 0.9
    delayed_update = delayed(warmed_ema(0.999), start=5)
    average, current = [torch.zeros(3)], [torch.ones(3)]
    for t in range(1, 5):  # before ema_start the average is the generator itself
        current[0] = torch.full((3,), float(t))
        delayed_update(average, current, torch.tensor(t))
        assert torch.equal(average[0], current[0])
    current[0] = torch.full((3,), 10.0)
    delayed_update(average, current, torch.tensor(5))  # then the ramp from its start: decay 1/10
    assert torch.allclose(average[0], torch.full((3,), 0.1 * 4 + 0.9 * 10))
    plain = resolve("wgan-gp", dict(steps=2, hidden=8, eval_every=0, seed=0, ema=0.99))
    warmed = resolve("wgan-gp", dict(steps=2, hidden=8, eval_every=0, seed=0, ema=0.99, ema_warmup=True))
    a, b = Trainer(plain), Trainer(warmed)
    a.train(), b.train()
    z = torch.randn(5, plain.latent_dim)
    with torch.no_grad():  # the plain EMA still holds 0.99 of the initial weights, the warmed one ~0.8
        assert not torch.allclose(a.sampler(z), b.sampler(z))


def test_conv_mlp_is_a_conv_generator_of_the_given_width_beside_an_mlp_critic(tmp_path):
    from conftest import write_mnist_fixture

    from wganlab.core.nets import ConvGenerator

    write_mnist_fixture(tmp_path / "mnist")
    config = resolve(None, dict(data="mnist", data_dir=str(tmp_path / "mnist"), net="conv-mlp", conv_width=8,
                                batch_size=8, steps=2, eval_every=0, eval_samples=16, held_out=16, log_every=1))
    trainer = Trainer(config)
    assert isinstance(trainer.generator, ConvGenerator) and trainer.generator.up3[0].in_channels == 8
    assert not any(isinstance(m, torch.nn.Conv2d) for m in trainer.critic.modules())
    assert math.isfinite(trainer.train()["fid"])
    with pytest.raises(ValueError, match="net 'conv-mlp' needs"):
        Trainer(resolve(None, dict(data="digits", net="conv-mlp")))


def test_an_image_mlp_critic_takes_its_own_width_and_depth(tmp_path):
    np.save(tmp_path / "grey28.npy", np.random.default_rng(0).random((40, 28, 28)).astype(np.float32))
    config = resolve(None, dict(data=str(tmp_path / "grey28.npy"), hidden=16, critic_hidden=24, critic_depth=1,
                                batch_size=8, held_out=8))
    trainer = Trainer(config)
    shapes = [tuple(m.weight.shape) for m in trainer.critic.modules() if isinstance(m, torch.nn.Linear)]
    assert shapes == [(24, 784), (1, 24)]  # was the generator's 2x16 whatever critic_hidden said
    assert [tuple(m.weight.shape) for m in trainer.generator.modules() if isinstance(m, torch.nn.Linear)][0] == (16, 64)


def test_an_image_mlp_critic_takes_its_norm(tmp_path):
    np.save(tmp_path / "grey28.npy", np.random.default_rng(0).random((40, 28, 28)).astype(np.float32))
    base = dict(data=str(tmp_path / "grey28.npy"), hidden=16, batch_size=8, held_out=8)
    layer = Trainer(resolve(None, dict(base, critic_norm="layer"))).critic
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in layer.modules()) == 2  # one per hidden layer
    # was silently dropped: --critic-norm layer trained the same critic as none, bit for bit
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in Trainer(resolve(None, base)).critic.modules())


def test_an_image_mlp_critic_takes_maxout_and_a_conv_critic_refuses_it(tmp_path):
    from wganlab.config import ConfigError
    from wganlab.core.nets import Maxout
    np.save(tmp_path / "grey28.npy", np.random.default_rng(0).random((40, 28, 28)).astype(np.float32))
    base = dict(data=str(tmp_path / "grey28.npy"), hidden=16, batch_size=8, held_out=8, maxout_pieces=3)
    critic = Trainer(resolve(None, base)).critic  # was a plain ReLU MLP whatever maxout_pieces said
    maxouts = [m for m in critic.modules() if isinstance(m, Maxout)]
    assert len(maxouts) == 2 and maxouts[0].linear.weight.shape == (16 * 3, 784)
    assert critic(torch.zeros(4, 1, 28, 28)).shape == (4, 1)
    with pytest.raises(ConfigError, match="maxout_pieces 3 .* conv critic has none"):
        Trainer(resolve(None, dict(base, net="conv")))
    base.pop("maxout_pieces")
    with pytest.raises(ConfigError, match="critic_hidden 24 / critic_depth 0 size an MLP critic; the conv critic"):
        Trainer(resolve(None, dict(base, net="conv", critic_hidden=24)))  # was ignored without a word
