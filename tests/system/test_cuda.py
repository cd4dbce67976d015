"""The checks that need a CUDA GPU (``pytest -m cuda``; ``benchmarks/gpu_check.sh`` runs them).
Without a GPU each is skipped; the CPU suite covers the same code paths on the CPU."""

import pytest
import torch

from wganlab.api import train_run
from wganlab.config import resolve
from wganlab.runs.folder import RunFolder
from wganlab.training.loop import Trainer

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)")]
TINY = dict(hidden=64, depth=2, batch_size=64, n_critic=2, ema=0.0, lr_decay_fraction=0.0, log_every=5,
            eval_every=0, eval_samples=500, w1_samples=300, steps=10)


def _losses(device, **more):
    trainer = Trainer(resolve("wgan-gp", dict(TINY, device=device, **more)))
    trainer.train()
    return torch.tensor([r["d_loss"] for r in trainer.history if r["kind"] == "train"])


def test_a_cuda_run_computes_what_the_cpu_run_computes():
    # the same draws (they are made on the CPU stream), so only float rounding differs
    cpu, cuda = _losses("cpu"), _losses("cuda")
    assert torch.allclose(cpu, cuda, rtol=0, atol=5e-3), (cpu, cuda)


def test_the_hand_written_critic_step_on_cuda_matches_autograd():
    assert torch.allclose(_losses("cuda"), _losses("cuda", critic_backward="autograd"), rtol=0, atol=5e-3)


def test_bf16_on_cuda_trains_to_finite_losses_near_fp32():
    fp32, bf16 = _losses("cuda"), _losses("cuda", precision="bf16")
    assert torch.isfinite(bf16).all() and (bf16 - fp32).abs().max() < 0.5


def test_a_cuda_run_resumes_bit_exactly(tmp_path):
    config = resolve("wgan-gp", dict(TINY, device="cuda", checkpoint_every=5))
    train_run(config, tmp_path / "whole")
    half = resolve("wgan-gp", dict(TINY, device="cuda", checkpoint_every=5, steps=5))
    train_run(half, tmp_path / "split")
    train_run(config, tmp_path / "split", resume=True)
    a = RunFolder(tmp_path / "whole").load_generator_weights()
    b = RunFolder(tmp_path / "split").load_generator_weights()
    assert all(torch.equal(a[k], b[k]) for k in a)
