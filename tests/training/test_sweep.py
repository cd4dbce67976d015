import dataclasses
import subprocess
import sys

import pytest
import torch

from conftest import subprocess_env
from wganlab.config import ConfigError, resolve
from wganlab.training.sweep import run_sweep, sweep_configs, train_configs
from wganlab.training.loop import Trainer

TINY = dict(hidden=32, depth=2, batch_size=64, steps=8, log_every=1, eval_every=0, eval_samples=200, w1_samples=100)


def test_a_sweep_matches_the_same_runs_trained_one_by_one():
    # the default preset: EMA, learning-rate decay and the gradient penalty all in play
    rows = run_sweep(resolve(None, TINY), seeds=[0, 1], grid={"lr_d": [8e-4, 2e-3]}, keep_history=True)
    assert [(r["seed"], r["lr_d"]) for r in rows] == [(0, 8e-4), (1, 8e-4), (0, 2e-3), (1, 2e-3)]
    for row in rows:
        trainer = Trainer(resolve(None, dict(TINY, seed=row["seed"], lr_d=row["lr_d"])))
        summary = trainer.train()
        records = [r for r in trainer.history if r["kind"] == "train"]
        for key in ("d_loss", "d_real", "penalty", "gp_grad_norm", "g_loss"):
            # float rounding, amplified by Adam in near-zero gradient components (see sweep.py)
            torch.testing.assert_close(torch.tensor([r[key] for r in row["history"]]),
                                       torch.tensor([r[key] for r in records]), rtol=1e-2, atol=1e-3, msg=key)
        assert row["w_estimate"] == pytest.approx(summary["w_estimate"], abs=2e-3)
        assert row["w1"] == pytest.approx(summary["w1"], abs=2e-3)
        assert row["modes_captured"] == summary["modes_captured"] and row["steps"] == summary["steps"] == 8
    # the runs are different runs: another seed or learning rate moves the W estimate far more
    estimates = [r["w_estimate"] for r in rows]
    assert min(abs(a - b) for i, a in enumerate(estimates) for b in estimates[i + 1:]) > 0.02


def test_weight_clipping_runs_in_a_sweep_and_keeps_each_runs_own_bound():
    base = resolve("wgan", dict(TINY, hidden=16, steps=2, n_critic=2, optimizer="adam"))
    rows = run_sweep(base, seeds=[0], grid={"clip": [0.01, 0.05]}, keep_history=True)
    assert [r["clip"] for r in rows] == [0.01, 0.05]
    assert all(0 < r["history"][-1]["clipped_fraction"] <= 1 for r in rows)


def test_grid_keys_and_values_are_checked_before_training():
    base = resolve(None, TINY)
    with pytest.raises(ConfigError, match="unknown sweep key"):
        sweep_configs(base, [0], {"learning_rate": [1]})
    with pytest.raises(ConfigError, match="n_critic must be >= 1"):
        sweep_configs(base, [0], {"n_critic": ["0"]})
    assert len(sweep_configs(base, [0, 1, 2], {"hidden": [8, 16]})) == 6


def test_cli_sweep_refuses_a_bad_grid_in_one_line():
    result = subprocess.run([sys.executable, "-m", "wganlab", "sweep", "--grid", "lr_d"], capture_output=True,
                            text=True, env=subprocess_env(OMP_NUM_THREADS="1"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["wganlab: error: --grid expects key=v1,v2,..., got 'lr_d'"]


@pytest.mark.parametrize("overrides,named", [
    (dict(constraint="r1"), "constraint"), (dict(update_rule="optimistic"), "update rule"),
    (dict(objective="began"), "objective"), (dict(optimizer="rmsprop"), "Adam only"),
    (dict(ema=0.99, ema_start=10), "fixed EMA decay"), (dict(ema=0.99, ema_warmup=True), "fixed EMA decay"),
])
def test_a_sweep_refuses_what_its_stacked_loop_does_not_implement(overrides, named):
    from wganlab.training.sweep import supports

    config = resolve(None, dict(steps=1, **overrides))
    assert not supports(config)
    with pytest.raises(ConfigError, match=named):
        run_sweep(config, seeds=[0])


def test_the_sensitivity_grid_trains_the_same_stacked_as_one_by_one():
    from wganlab.experiments import sensitivity

    settings, configs = sensitivity.grid_configs(sensitivity.grid(quick=False))
    # per preset, both n_critic and both beta1 values, on two seeds
    picks = [(1, 0.5, 1e-3, 0), (5, 0.9, 3e-4, 1)]
    chosen = [i for i, s in enumerate(settings) if (s["n_critic"], s["beta1"], s["lr"], s["seed"]) in picks]
    assert len(chosen) == 2 * len(sensitivity.PRESETS)
    short = [dataclasses.replace(configs[i], steps=6, log_every=1, eval_samples=300, w1_samples=100) for i in chosen]
    rows = train_configs(short, keep_history=True)
    for config, row in zip(short, rows):
        trainer = Trainer(config)
        summary = trainer.train()
        records = [r for r in trainer.history if r["kind"] == "train"]
        for key in ("d_loss", "g_loss"):
            torch.testing.assert_close(torch.tensor([r[key] for r in row["history"]]),
                                       torch.tensor([r[key] for r in records]), rtol=1e-2, atol=1e-3,
                                       msg=f"{config.objective} {key}")
        assert row["w1"] == pytest.approx(summary["w1"], abs=2e-3), config.objective
        assert row["modes_captured"] == summary["modes_captured"]
