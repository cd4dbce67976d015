"""torchrun data parallelism: two gloo ranks equal one process on the concatenated batch."""

import socket
import subprocess
import sys

import pytest
import torch

from conftest import subprocess_env
from wganlab.config import resolve
from wganlab.data.toy import make_toy
from wganlab.core.objectives import get_objective
from wganlab.runs.folder import RunFolder
from wganlab.training.loop import build_critic, build_generator, rank_seed

SETTINGS = dict(hidden=16, depth=2, batch_size=16, n_critic=2, steps=3, ema=0.0, lr_decay_fraction=0.0,
                log_every=1, eval_every=0, eval_samples=100, w1_samples=50, gp_weight=10.0, threads=1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _penalty(critic, real, fake, eps, weight):
    # written out here, independently of wganlab.core.constraints
    points = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    norms = torch.sqrt(grad.pow(2).sum(dim=1) + 1e-12)
    return weight * (norms - 1).pow(2).mean()


def _single_process_reference(config, world: int):
    """Trains on the ranks' batches concatenated, each rank's draws replayed from its stream."""
    torch.manual_seed(config.seed)
    generator, critic = build_generator(config, 2), build_critic(config, 2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    objective = get_objective(config.objective)
    data = make_toy(config.data)
    streams = [torch.Generator().manual_seed(rank_seed(config.seed, r)) for r in range(world)]
    local = config.batch_size // world
    for _ in range(config.steps):
        for _ in range(config.n_critic):
            reals, fakes, epss = [], [], []
            for stream in streams:  # the order each rank draws in: data, noise, interpolation weights
                reals.append(data.sample(local, generator=stream))
                z = torch.randn(local, config.latent_dim, generator=stream)
                with torch.no_grad():
                    fakes.append(generator(z))
                epss.append(torch.rand(local, 1, generator=stream))
            real, fake, eps = torch.cat(reals), torch.cat(fakes), torch.cat(epss)
            loss = objective.critic(critic(real), critic(fake)).total + _penalty(critic, real, fake, eps,
                                                                                  config.gp_weight)
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
        z = torch.cat([torch.randn(local, config.latent_dim, generator=stream) for stream in streams])
        loss = objective.generator(critic(generator(z)))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
    return generator, critic


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_ranks_match_one_process_on_the_concatenated_batch(tmp_path):
    out = tmp_path / "ddp"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               "-m", "wganlab", "train", "--out", str(out), "--no-progress", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240,
                            env=subprocess_env(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo"))
    assert result.returncode == 0, result.stderr[-3000:]
    _, state, _ = RunFolder(out).load_latest_checkpoint()
    assert state["step"] == SETTINGS["steps"]

    generator, critic = _single_process_reference(resolve(overrides=SETTINGS), world=2)
    for name, value in generator.state_dict().items():
        torch.testing.assert_close(state["generator"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    for name, value in critic.state_dict().items():
        torch.testing.assert_close(state["critic"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_the_reference_is_not_trivially_equal_to_a_one_rank_run(tmp_path):
    # the comparison above can fail: one rank's batch alone gives other parameters
    generator_two, _ = _single_process_reference(resolve(overrides=SETTINGS), world=2)
    generator_one, _ = _single_process_reference(resolve(overrides=SETTINGS), world=1)
    differences = [float((a - b).abs().max()) for a, b in zip(generator_two.state_dict().values(),
                                                       generator_one.state_dict().values())]
    assert max(differences) > 1e-4
