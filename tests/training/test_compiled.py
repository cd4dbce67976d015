"""critic_backward = "compiled": the hand-written critic step through torch.compile gives the eager
step's numbers, and a step that cannot compile says so and trains eager."""

import io
import os
import shutil

import pytest
import torch

from wganlab.config import resolve
from wganlab.training.loop import Trainer

SMALL = dict(hidden=32, depth=2, batch_size=64, eval_samples=200, w1_samples=100, log_every=1, eval_every=0, steps=4)


def _critic_parameters(trainer):
    return [p.detach().clone() for p in trainer.critic.parameters()]


def test_the_compiled_critic_step_gives_the_eager_steps_numbers():
    compiled = Trainer(resolve("wgan-gp", dict(SMALL, critic_backward="compiled")))
    assert compiled._critic_step is not None  # the hand-written step, to be compiled
    if not shutil.which(os.environ.get("CXX", "g++")):  # no C++ compiler: the fallback test covers it
        pytest.skip("no C++ compiler for inductor on this machine")
    eager = compiled._critic_step.eager
    weights, biases = compiled._critic_views
    rng = torch.Generator().manual_seed(3)
    for _ in range(2):  # the second call reuses the compiled code
        real, fake = torch.randn(2, 1, 64, 2, generator=rng)
        eps = torch.rand(1, 64, 1, generator=rng)
        with torch.no_grad():  # as the trainer calls it
            want, got = eager(weights, biases, real, fake, eps), compiled._critic_step(weights, biases, real, fake, eps)
        assert compiled._critic_step.failed is None and compiled._critic_step._compiled is not None
        for a, b in zip(want.weight_grads + want.bias_grads, got.weight_grads + got.bias_grads):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)  # fused kernels round differently, no more
        torch.testing.assert_close(got.penalty_stats["penalty"], want.penalty_stats["penalty"])
        torch.testing.assert_close(got.loss_stats.total, want.loss_stats.total)
    # and a short run: the same losses as the eager run's (Adam's first steps amplify rounding in
    # parameters whose gradient is near 0, so the run is compared by its losses)
    compiled.train()
    plain = Trainer(resolve("wgan-gp", dict(SMALL, critic_backward="auto")))
    plain.train()
    for a, b in zip(plain.history, compiled.history):
        if a["kind"] == "train":
            assert abs(a["d_loss"] - b["d_loss"]) < 1e-3 and abs(a["g_loss"] - b["g_loss"]) < 1e-3


def test_a_critic_step_that_cannot_compile_says_so_once_and_trains_eager(monkeypatch):
    def no_compiler(fn, **kwargs):
        def fails(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return fails

    monkeypatch.setattr(torch, "compile", no_compiler)
    said = io.StringIO()
    compiled = Trainer(resolve("wgan-gp", dict(SMALL, critic_backward="compiled")))
    compiled._critic_step.stream = said
    compiled.train()
    eager = Trainer(resolve("wgan-gp", dict(SMALL, critic_backward="auto")))
    eager.train()
    lines = said.getvalue().splitlines()
    assert len(lines) == 1 and "could not compile the critic step" in lines[0] and "C++ compiler" in lines[0]
    for a, b in zip(_critic_parameters(eager), _critic_parameters(compiled)):
        assert torch.equal(a, b)  # the eager step itself, bit for bit


def test_compiled_on_a_critic_without_the_hand_written_step_says_it_is_not_compiled(capsys):
    trainer = Trainer(resolve("wgan-gp", dict(SMALL, critic_backward="compiled", critic_norm="layer")))
    assert trainer._critic_step is None
    assert "takes autograd's step, not compiled" in capsys.readouterr().err
    Trainer(resolve("wgan-gp", dict(SMALL, critic_norm="layer")))  # asked for nothing: nothing said
    assert capsys.readouterr().err == ""
