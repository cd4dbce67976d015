"""Packing (PacGAN): the critic scores m samples concatenated."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from wganlab.config import ConfigError, resolve
from wganlab.core.constraints import make_constraint
from wganlab.core.objectives import get_objective
from wganlab.core.packing import PackedCritic, pack_samples, score_points, whole_packs
from wganlab.training import step
from wganlab.training.build import build_critic
from wganlab.training.loop import Trainer

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=200, w1_samples=100, held_out=64, log_every=1,
            eval_every=0)


def test_pack_concatenates_consecutive_samples_along_features_and_channels():
    x = torch.arange(12.0).reshape(6, 2)
    assert_close(pack_samples(x, 3), torch.tensor([[0.0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]))
    images = torch.randn(4, 1, 5, 5)
    packed = pack_samples(images, 2)
    assert packed.shape == (2, 2, 5, 5)
    assert torch.equal(packed[1, 0], images[2, 0]) and torch.equal(packed[1, 1], images[3, 0])
    assert pack_samples(x, 1) is x


def test_penalty_of_a_linear_critic_on_packed_inputs_by_hand():
    # f(p) = w . p + b on packs p of m = 4 two-dimensional samples: the input gradient is w at every
    # packed interpolate, so the penalty is lambda (||w|| - 1)^2 with the norm over all 8 inputs,
    # and the Wasserstein critic loss is the mean over packs of f(fake) - f(real).
    w = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, 1.0, -0.5, 0.25])
    critic = nn.Linear(8, 1)
    with torch.no_grad():
        critic.weight.copy_(w.unsqueeze(0))
        critic.bias.fill_(0.3)
    packed = PackedCritic(critic, (2,), 4)
    real, fake = torch.randn(16, 2), torch.randn(16, 2) + 3
    terms = step.critic_terms(get_objective("wasserstein"), make_constraint("gradient-penalty", gp_weight=10.0),
                              packed, real, fake, torch.Generator().manual_seed(0), pack=4)
    real_packs, fake_packs = real.reshape(4, 8), fake.reshape(4, 8)
    by_hand_penalty = 10.0 * (w.norm() - 1) ** 2
    by_hand_loss = (fake_packs @ w).mean() - (real_packs @ w).mean()
    assert terms.scores.shape == (8, 1)  # one score per pack: 4 real packs, then 4 fake
    assert_close(terms.losses.total, by_hand_loss, atol=1e-5, rtol=1e-5)
    assert_close(terms.total, by_hand_loss + by_hand_penalty, atol=1e-4, rtol=1e-5)


def test_penalty_is_taken_at_packed_interpolates_with_one_weight_per_pack():
    # f(p) = ||p||^2 / 2 has gradient p: the norms are those of the packed interpolates
    # eps_k real_k + (1 - eps_k) fake_k, with one eps_k ~ U[0, 1] per pack, drawn from the run's stream.
    def critic(p):
        return 0.5 * p.pow(2).sum(1, keepdim=True)

    real, fake = torch.randn(12, 2), torch.randn(12, 2)
    terms = step.critic_terms(get_objective("wasserstein"), make_constraint("gradient-penalty", gp_weight=2.0),
                              critic, real, fake, torch.Generator().manual_seed(5), pack=3)
    eps = torch.rand(4, 1, generator=torch.Generator().manual_seed(5))
    points = eps * real.reshape(4, 6) + (1 - eps) * fake.reshape(4, 6)
    norms = points.norm(dim=1)
    penalty = terms.total - terms.losses.total
    assert_close(penalty, 2.0 * (norms - 1).pow(2).mean(), atol=1e-5, rtol=1e-5)


def test_packed_critic_shape_errors_name_pack():
    packed = PackedCritic(nn.Linear(8, 1), (2,), 4)
    assert packed(torch.randn(8, 2)).shape == (2, 1)  # samples: packed here
    assert packed(torch.randn(2, 8)).shape == (2, 1)  # packs: scored as they are
    with pytest.raises(ValueError, match=r"pack=4.*shape \(2,\).*\(8,\).*\(6, 3\)"):
        packed(torch.randn(6, 3))
    with pytest.raises(ValueError, match="10 samples does not split into packs of pack=4"):
        packed(torch.randn(10, 2))
    with pytest.raises(ConfigError, match="batch_size 30 is not a multiple of pack 4"):
        resolve("wgan-gp-2d", dict(pack=4, batch_size=30))
    with pytest.raises(ConfigError, match="pack must be >= 1"):
        resolve("wgan-gp-2d", dict(pack=0))


def test_a_packed_critic_is_built_for_packs_of_every_data_shape():
    flat = build_critic(resolve("wgan-gp-2d", dict(pack=3, batch_size=30, held_out=30)), (2,))
    assert flat.net[0].in_features == 6 and flat(torch.randn(9, 2)).shape == (3, 1)
    conv = build_critic(resolve("wgan-gp-mnist", dict(pack=2)), (1, 28, 28))
    assert conv(torch.randn(4, 1, 28, 28)).shape == (2, 1)
    # the value surface of a packed critic: each point scored as a pack of copies of itself
    points = torch.randn(5, 2)
    assert_close(score_points(flat, points), flat.net(points.repeat(1, 3)))


def _run(**overrides):
    trainer = Trainer(resolve("wgan-gp-2d", {**TINY, "steps": 6, **overrides}))
    trainer.train()
    return trainer


def test_pack_1_is_the_unpacked_run_bit_for_bit():
    plain, packed_1 = _run(), _run(pack=1)
    assert type(plain.critic) is type(packed_1.critic) and not isinstance(plain.critic, PackedCritic)
    assert torch.equal(plain.sample(64), packed_1.sample(64))
    assert all(torch.equal(a, b) for a, b in zip(plain.critic.state_dict().values(),
                                                 packed_1.critic.state_dict().values()))


def test_packed_runs_train_and_both_critic_paths_agree():
    # the hand-written critic step and autograd give the same packed run (float tolerance)
    runs = {path: _run(pack=4, critic_backward=path) for path in ("auto", "autograd")}
    auto, autograd = runs["auto"], runs["autograd"]
    assert auto._critic_layers is not None and autograd._critic_layers is None
    assert_close(auto.sample(64), autograd.sample(64), atol=1e-4, rtol=1e-4)
    assert auto.last_train["penalty"] >= 0 and not torch.equal(auto.sample(64), _run().sample(64))


@pytest.mark.parametrize("objective, constraint", [("non-saturating", "r1"), ("hinge", "spectral-norm"),
                                                   ("wasserstein", "clip"), ("began", "none")])
def test_packing_works_with_other_objectives_and_constraints(objective, constraint):
    trainer = _run(pack=2, objective=objective, constraint=constraint, steps=2)
    assert isinstance(trainer.critic, PackedCritic)
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.last_train.values() if isinstance(v, float))


def test_whole_packs_is_the_largest_multiple_of_pack_not_above_n():
    assert [whole_packs(n, 3) for n in (0, 2, 3, 512, 600)] == [0, 0, 3, 510, 600]
    assert whole_packs(7, 1) == 7
