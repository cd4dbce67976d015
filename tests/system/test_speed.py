import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

from wganlab.config import ConfigError, resolve
from wganlab.training.loop import Trainer

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY = dict(hidden=32, depth=2, batch_size=64, n_critic=2, gp_weight=10.0, lr_g=1e-3, lr_d=1e-3, ema=0.0,
            lr_decay_fraction=0.0, log_every=1, eval_every=0, eval_samples=200, w1_samples=100)


def _naive_loop_module():
    spec = importlib.util.spec_from_file_location("naive_loop", BENCHMARKS / "naive_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fast_trainer_and_the_plain_naive_loop_give_the_same_losses_for_a_seed():
    # The speed ratios compare the same mathematics: fused Adam, one concatenated critic
    # forward and on-device statistics change how, not what, the loop computes. Float
    # rounding differs (a concatenated matmul, a fused update), and Adam turns a rounding
    # difference in a near-zero gradient component into an O(lr) step, so the losses agree to
    # ~5e-4 here, against differences of ~0.07 between two seeds.
    def both(seed):
        config = resolve("wgan-gp", dict(TINY, steps=10, seed=seed))
        trainer = Trainer(config)
        trainer.train()
        records = [r for r in trainer.history if r["kind"] == "train"]
        naive = _naive_loop_module().NaiveWGANGP(config)
        naive.train(10)
        fast = {key: torch.tensor([r[key] for r in records]) for key in ("d_loss", "penalty", "g_loss")}
        plain = {"d_loss": torch.tensor(naive.d_costs).reshape(10, 2).mean(dim=1),
                 "penalty": torch.tensor(naive.gradient_penalties).reshape(10, 2).mean(dim=1),
                 "g_loss": torch.tensor(naive.g_costs)}
        return fast, plain

    fast, plain = both(3)
    for key in fast:
        torch.testing.assert_close(fast[key], plain[key], rtol=1e-2, atol=1e-3, msg=key)
    _, other_seed = both(4)
    assert (other_seed["g_loss"] - plain["g_loss"]).abs().max() > 0.02


def test_adam_is_fused_where_torch_has_it():
    trainer = Trainer(resolve("wgan-gp", dict(TINY, steps=1)))
    assert trainer.opt_d.defaults["fused"] is True and trainer.opt_g.defaults["fused"] is True


def _critic_gradient(precision: str) -> torch.Tensor:
    trainer = Trainer(resolve("wgan-gp", dict(TINY, hidden=256, batch_size=256, steps=1, precision=precision)))
    trainer.critic_step()  # the step leaves this step's gradients in .grad
    return torch.cat([p.grad.flatten() for p in trainer.critic.parameters()])


def test_bf16_critic_gradients_are_within_3_percent_of_fp32_and_not_identical():
    fp32, bf16 = _critic_gradient("fp32"), _critic_gradient("bf16")
    relative = float((bf16 - fp32).norm() / fp32.norm())
    assert 1e-5 < relative < 0.03, relative  # > 0: the autocast really ran in bf16


def test_bf16_run_trains_with_finite_statistics():
    trainer = Trainer(resolve(None, dict(hidden=32, steps=5, log_every=5, eval_every=0, eval_samples=200,
                                         w1_samples=100, precision="bf16")))
    summary = trainer.train()
    record = trainer.last_train
    assert all(torch.isfinite(torch.tensor(record[k])) for k in ("d_loss", "g_loss", "penalty", "w_estimate"))
    assert summary["steps"] == 5


def test_bf16_where_its_matmuls_are_emulated_warns_and_names_the_fix(monkeypatch):
    from wganlab.training.build import check_precision, native_bf16

    cpu, config = torch.device("cpu"), resolve(None, dict(precision="bf16"))
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert not native_bf16(cpu)
    with pytest.warns(UserWarning, match="no native bf16 matmuls.*--precision fp32"):
        check_precision(config, cpu)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16(cpu)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_precision(config, cpu)  # native: no warning
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
        check_precision(resolve(None, dict(precision="fp32")), cpu)  # fp32: nothing to say
        monkeypatch.setenv("LOCAL_RANK", "1")
        check_precision(config, cpu)  # emulated, but torchrun's second process on the machine: its first says it
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.warns(UserWarning, match="no native bf16 matmuls"):
        check_precision(config, cpu)


def test_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="precision.*fp32, bf16"):
        resolve(None, {"precision": "fp16"})


def test_the_naive_mnist_workload_is_the_example_repositories_nets_on_shuffled_real_digits():
    from wganlab.data.mnist import mnist_available

    if not mnist_available():
        pytest.skip("MNIST not fetched: run 'wganlab data fetch mnist'")
    loop = _naive_loop_module().mnist_workload(seed=0)
    widths = [m.out_features for m in loop.G.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 256, 512, 1024, 784]
    assert [m.out_features for m in loop.D.modules() if isinstance(m, torch.nn.Linear)] == [512, 256, 1]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in loop.G.modules()) == 3
    first, second = loop.sample_real(64, None), loop.sample_real(64, None)
    assert first.shape == (64, 1, 28, 28) and not torch.equal(first, second)
    assert (loop.config.batch_size, loop.config.n_critic, loop.config.beta2, loop.config.lr_g) == (64, 5, 0.999, 2e-4)
    loop.train(2)
    assert len(loop.d_costs) == 10 and loop.sample(8).shape == (8, 1, 28, 28)


def test_the_mnist_time_to_quality_rows_read_a_curve_as_first_crossing_and_last_seen():
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("time_to_quality_mnist", BENCHMARKS / "time_to_quality_mnist.py")
        rows = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(rows)
    finally:
        sys.path.remove(str(BENCHMARKS))
    curve = [(20.0, 300.0), (45.0, 90.0), (70.0, 60.0), (130.0, 48.0), (310.0, 24.0)]
    assert rows.first_time(curve, 100.0) == 45.0 and rows.first_time(curve, 50.0) == 130.0
    assert rows.first_time(curve, 10.0) is None  # never reached: reported as such, not as the budget
    assert rows.fid_at(curve, 60.0) == 90.0 and rows.fid_at(curve, 300.0) == 48.0 and rows.fid_at(curve, 10.0) is None
    assert rows.fid_at(curve, 600.0) is None  # the run ended at 310 s: no FID at 10 minutes, not its last one
