import json
import math

import numpy as np
import pytest
import torch
from conftest import write_mnist_fixture

from wganlab.api import load_generator, train_run
from wganlab.config import resolve
from wganlab.core.nets import ConvCritic, ConvGenerator
from wganlab.training.loop import Trainer

TINY_IMAGES = dict(batch_size=8, steps=2, n_critic=2, eval_every=1, eval_samples=24, log_every=1, latent_dim=16, held_out=32)


@pytest.mark.parametrize("preset", ["wgan-gp-mnist", "ns-gan-mnist"])
def test_image_presets_train_conv_nets_and_evaluate_fid_and_classes(tmp_path, preset):
    write_mnist_fixture(tmp_path / "mnist")
    config = resolve(preset, dict(TINY_IMAGES, data_dir=str(tmp_path / "mnist")))
    trainer = Trainer(config)
    assert isinstance(trainer.generator, ConvGenerator) and isinstance(trainer.critic, ConvCritic)
    before = [p.detach().clone() for p in trainer.critic.parameters()]
    summary = trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.critic.parameters()))
    evals = [r for r in trainer.history if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [1, 2]
    for key in ("fid", "kid", "class_kl"):
        assert math.isfinite(summary[key])
    assert 1 <= summary["classes_covered"] <= 10 and sum(summary["class_counts"]) == 24
    assert summary["fid"] > 0 and 0 <= summary["class_kl"] <= math.log(10) + 1e-9
    if preset == "wgan-gp-mnist":
        assert trainer.last_train["gp_grad_norm"] > 0


def test_image_run_folder_has_grids_at_each_eval_and_a_report_showing_them(tmp_path):
    write_mnist_fixture(tmp_path / "mnist")
    config = resolve("wgan-gp-mnist", dict(TINY_IMAGES, data_dir=str(tmp_path / "mnist")))
    out = tmp_path / "run"
    train_run(config, out)
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["step-0000001.png", "step-0000002.png"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "eval" and "fid" in r for r in records) == 2
    assert np.load(out / "samples.npy").shape == (24, 1, 28, 28)
    report = (out / "report.html").read_text()
    for name in ("samples_grid.png", "class_histogram.png", "image_metrics.png"):
        assert (out / name).is_file()
    assert report.count("<img") == 6  # final grid, metrics, histogram, 2 step grids, curves
    assert "fixed-noise samples at step 2" in report and "fid" in report
    sampler = load_generator(out)
    assert sampler(5, seed=1).shape == (5, 1, 28, 28)


def test_stacked_and_small_images_pick_the_right_nets(tmp_path):
    write_mnist_fixture(tmp_path / "mnist")
    stacked = Trainer(resolve("wgan-gp-stacked-mnist", dict(TINY_IMAGES, steps=1, eval_samples=16,
                                                            data_dir=str(tmp_path / "mnist"))))
    assert stacked.generator(torch.randn(2, 16)).shape == (2, 3, 28, 28)
    summary = stacked.train()
    assert 1 <= summary["modes_captured"] <= 16 and summary["n_modes"] == 1000
    np.save(tmp_path / "small.npy", np.random.default_rng(0).random((20, 8, 8)).astype(np.float32))
    small = Trainer(resolve(None, dict(TINY_IMAGES, data=str(tmp_path / "small.npy"), hidden=16, depth=1)))
    assert small.generator(torch.randn(3, 16)).shape == (3, 1, 8, 8)
    assert small.train()["feature_space"] == "pixels"
    with pytest.raises(ValueError, match="net 'conv' needs"):
        Trainer(resolve(None, dict(TINY_IMAGES, data=str(tmp_path / "small.npy"), net="conv")))
