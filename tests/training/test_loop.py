import copy
import itertools
import math

import pytest
import torch

from wganlab.config import resolve
from wganlab.core.constraints import CONSTRAINTS
from wganlab.core.objectives import OBJECTIVES
from wganlab.training.loop import Trainer

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=200, w1_samples=100, log_every=1, eval_every=0)


@pytest.mark.parametrize("objective, constraint", list(itertools.product(OBJECTIVES, CONSTRAINTS)))
def test_one_step_of_every_objective_and_constraint(objective, constraint):
    config = resolve("wgan-gp-2d", dict(TINY, objective=objective, constraint=constraint, steps=1, n_critic=2))
    trainer = Trainer(config)
    critic_before = [p.detach().clone() for p in trainer.critic.parameters()]
    generator_before = [p.detach().clone() for p in trainer.generator.parameters()]
    summary = trainer.train()
    record = trainer.last_train
    for key in ("d_loss", "d_real", "d_fake", "g_loss", "w_estimate", "grad_norm_g", "grad_norm_d"):
        assert math.isfinite(record[key]), key
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, trainer.critic.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(generator_before, trainer.generator.parameters()))
    if constraint == "gradient-penalty":
        assert record["penalty"] >= 0 and record["gp_grad_norm"] > 0
    if constraint == "clip":
        assert max(p.abs().max() for p in trainer.critic.parameters()) <= config.clip
        assert 0 <= record["clipped_fraction"] <= 1
    assert summary["steps"] == 1 and 0 <= summary["modes_captured"] <= 8


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not():
    def run(seed):
        trainer = Trainer(resolve("wgan-gp-2d", dict(TINY, steps=4, seed=seed)))
        trainer.train()
        return [{k: v for k, v in r.items() if k != "time"} for r in trainer.history]

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_learning_rate_decays_linearly_to_zero_over_the_final_fraction():
    trainer = Trainer(resolve("wgan-gp-2d", dict(TINY, steps=10, lr_decay_fraction=0.5, lr_g=1e-3)))
    lrs = []
    for _ in range(10):
        trainer.advance()
        lrs.append(trainer.opt_g.param_groups[0]["lr"])
    assert lrs[:4] == [1e-3] * 4
    assert lrs[4:] == pytest.approx([1e-3, 0.8e-3, 0.6e-3, 0.4e-3, 0.2e-3, 0.0])


def test_the_budget_clock_decays_by_the_share_of_the_budget_spent_or_by_steps_whichever_is_further():
    from wganlab.core.schedules import budget_decay, linear_decay

    factor = budget_decay(1000, 0.5, max_seconds=100.0)
    assert factor(10, 10.0) == 1.0  # 10% of the budget: step 100 of 1000, before the decay starts at 500
    assert factor(10, 75.0) == pytest.approx(0.5)  # 75% of the budget counts as step 750: half-way down
    assert factor(900, 10.0) == pytest.approx(0.2)  # the steps ahead of the clock: step 900
    assert factor(10, 100.0) == factor(10, 250.0) == 0.0  # the budget spent: decayed
    no_budget = budget_decay(1000, 0.5, max_seconds=0.0)
    assert [no_budget(s, 1e9) for s in (0, 600, 1000)] == [linear_decay(1000, 0.5)(s) for s in (0, 600, 1000)]


def test_a_run_cut_by_its_budget_ends_decayed_on_the_budget_clock_and_not_on_the_steps_clock():
    budget = dict(TINY, steps=10**6, max_seconds=1.5, log_every=10)
    by_steps = Trainer(resolve("wgan-gp-2d", budget))
    by_steps.train()
    by_budget = Trainer(resolve("wgan-gp-2d", dict(budget, lr_decay_clock="budget")))
    by_budget.train()
    assert by_steps.step < 10**6 and by_budget.step < 10**6  # both cut by the 1.5 s
    assert by_steps.opt_g.param_groups[0]["lr"] == 8e-4  # the steps' plan had not begun to decay
    assert by_budget.opt_g.param_groups[0]["lr"] < 0.05 * 8e-4  # the budget's plan had all but ended
    lrs = [r["lr_g"] for r in by_budget.history if r["kind"] == "train"]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] == 8e-4  # flat, then falling


def test_the_budget_clock_without_a_binding_budget_is_the_steps_run_bit_for_bit():
    def run(**clock):
        trainer = Trainer(resolve("wgan-gp-2d", dict(TINY, steps=6, lr_decay_fraction=0.5, **clock)))
        trainer.train()
        return [{k: v for k, v in r.items() if k != "time"} for r in trainer.history]

    assert run() == run(lr_decay_clock="budget") == run(lr_decay_clock="budget", max_seconds=1e9)


def test_logged_losses_are_means_over_the_critic_steps_of_the_interval():
    config = resolve("wgan-gp-2d", dict(TINY, steps=1, n_critic=3))
    by_hand = Trainer(config)
    critic_losses = [float(by_hand.critic_step()["d_loss"]) for _ in range(3)]
    g_loss = float(by_hand.generator_step()["g_loss"])
    logged = Trainer(config)
    logged.train()
    assert logged.last_train["d_loss"] == pytest.approx(sum(critic_losses) / 3, rel=1e-5)
    assert logged.last_train["g_loss"] == pytest.approx(g_loss, rel=1e-5)


def test_wall_clock_budget_stops_the_run_and_still_evaluates():
    config = resolve("wgan-gp-2d", dict(TINY, steps=10**6, max_seconds=0.5))
    summary = Trainer(config).train()
    assert 1 <= summary["steps"] < 10**6 and summary["wall_seconds"] < 5
    assert "modes_captured" in summary and summary["w1"] > 0


@pytest.mark.slow
def test_default_preset_captures_six_modes_by_step_800_and_meets_the_ring8_bar_on_seed_0():
    # The headline claim, checked as a number: 8/8 modes, >= 90% high quality, reverse KL <= 0.1
    # (benchmarks/quality_toy.py checks seeds 0-4); and early progress, read from the same run's
    # evaluation at step 800 (measured: 8 modes, 64.9% high quality) instead of a second run.
    trainer = Trainer(resolve(None, {"eval_every": 800, "seed": 0}))
    summary = trainer.train()
    early = next(r for r in trainer.history if r["kind"] == "eval")
    assert early["step"] == 800 and early["modes_captured"] >= 6 and early["high_quality_fraction"] > 0.2, early
    assert summary["modes_captured"] == 8, summary
    assert summary["high_quality_fraction"] >= 0.90, summary
    assert summary["reverse_kl"] <= 0.1, summary


def test_callbacks_see_every_record_and_the_end():
    class Recorder:
        def __init__(self):
            self.records, self.summary = [], None

        def on_record(self, trainer, record):
            self.records.append(record)

        def on_end(self, trainer, summary):
            self.summary = summary

    recorder = Recorder()
    config = resolve(overrides=dict(steps=20, log_every=5, eval_every=10, eval_samples=200, w1_samples=200))
    trainer = Trainer(config, callbacks=[recorder])
    summary = trainer.train()
    assert recorder.records == trainer.history
    assert [r["step"] for r in recorder.records if r["kind"] == "train"] == [5, 10, 15, 20]
    assert [r["step"] for r in recorder.records if r["kind"] == "eval"] == [10, 20]
    assert recorder.summary == summary


@pytest.mark.slow
def test_the_grid25_default_captures_twenty_modes_with_half_the_samples_high_quality():
    # a behaviour check of the preset `--data grid25` starts from, shortened to 8,000 of its
    # 16,000 steps (the earlier 3x128, batch-256 recipe measured 25/25 modes and 83.0% high quality
    # here on seed 0, and 16.6% at 3,000 steps; the full length and the seeds are
    # benchmarks/quality_toy.py's)
    config = resolve(None, {"data": "grid25", "steps": 8000, "eval_every": 0, "seed": 0})
    assert config.preset == "wgan-gp-2d-grid25"
    summary = Trainer(config).train()
    assert summary["modes_captured"] >= 20 and summary["high_quality_fraction"] >= 0.5, summary


def test_the_critic_surface_is_computed_once_per_state():
    trainer = Trainer(resolve("wgan-gp-2d", dict(TINY, steps=1)))
    trainer.train()
    xs, ys, values = trainer.critic_surface()
    assert trainer.critic_surface()[2] is values  # the end of a run reuses the final evaluation's
    assert trainer.critic_surface(resolution=20)[2].shape == (20, 20)
    state = copy.deepcopy(trainer.state_dict())
    with torch.no_grad():
        next(trainer.critic.parameters()).add_(1.0)  # the critic changed at the same step
    changed = trainer.critic_surface()[2]
    assert changed is not values and not (changed == values).all()
    trainer.load_state_dict(state)
    assert (trainer.critic_surface()[2] == values).all()


def test_samples_are_drawn_once_per_generator_state_and_in_pieces_as_in_one_batch(monkeypatch):
    trainer = Trainer(resolve("wgan-gp-2d", dict(TINY, steps=1)))
    trainer.train()
    z = torch.randn(600, trainer.config.latent_dim, generator=torch.Generator().manual_seed(7))
    whole = trainer.generate(z)
    calls = []
    generate = trainer.generate
    monkeypatch.setattr(trainer, "generate", lambda noise: calls.append(len(noise)) or generate(noise))
    first = trainer.sample(600, seed=7)
    assert calls == [256, 256, 88] and torch.equal(first, whole)  # 256 rows at a time, the same values
    first.add_(1.0)  # a caller's copy: changing it changes nothing kept
    assert torch.equal(trainer.sample(600, seed=7), whole) and calls == [256, 256, 88]
    trainer.sample(10, seed=7)
    assert torch.equal(trainer.sample(600, seed=7), whole) and calls == [256, 256, 88, 10]
    with torch.no_grad():
        next(trainer.sampler.parameters()).add_(1.0)  # the reported generator changed at the same step
    changed = trainer.sample(600, seed=7)
    assert len(calls) == 7 and not torch.equal(changed, whole)


def test_an_evaluation_solves_its_w1_while_the_callbacks_draw(monkeypatch):
    from wganlab.util import sidecar

    order = []
    submit = sidecar.submit

    def recording(name, target, *args, **kwargs):
        order.append(target.rpartition(":")[2])
        return submit(name, target, *args, **kwargs)

    class Drawer:
        def before_eval(self, trainer):
            order.append("before_eval")

    monkeypatch.setattr(sidecar, "submit", recording)
    trainer = Trainer(resolve("wgan-gp-2d", dict(TINY, steps=1)), callbacks=[Drawer()])
    trainer.train()
    assert order == ["exact_w1", "before_eval"]
    assert trainer.last_eval["w1"] == pytest.approx(trainer.evaluate()["w1"])


@pytest.mark.parametrize("preset", ["hinge", "sngan", "wgan-gp"])
def test_how_often_a_run_logs_and_evaluates_never_changes_what_it_trains(preset):
    # a spectrally normalised critic updates its power-iteration vectors on every forward in training
    # mode: the measurements (W estimate, gradient norms, critic surface) take it in eval mode
    def trained(**cadence):
        trainer = Trainer(resolve(preset, dict(hidden=32, depth=2, batch_size=64, steps=20, eval_samples=200,
                                               w1_samples=100, **cadence)))
        trainer.train()
        return [*trainer.critic.state_dict().values(), *trainer.generator.state_dict().values()]

    quiet, busy = trained(log_every=20, eval_every=0), trained(log_every=2, eval_every=5)
    assert all(torch.equal(a, b) for a, b in zip(quiet, busy))


def test_advance_is_the_loops_step_without_its_logging():
    # benchmarks (average_screen) step a Trainer with advance(): it must train what train() trains,
    # learning-rate decay included
    config = resolve("wgan-gp-2d", dict(TINY, steps=6, lr_decay_fraction=0.5))
    looped, stepped = Trainer(config), Trainer(config)
    looped.train()
    for _ in range(6):
        stepped.advance()
    assert stepped.step == looped.step == 6 and stepped.history == []
    assert stepped.opt_g.param_groups[0]["lr"] == looped.opt_g.param_groups[0]["lr"] == 0.0
    for a, b in [(looped.generator, stepped.generator), (looped.critic, stepped.critic)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
