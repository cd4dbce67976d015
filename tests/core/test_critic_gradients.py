"""The hand-written critic step (wganlab.core.critic_gradients) against autograd on the same nets."""

import pytest
import torch

from wganlab.config import resolve
from wganlab.core.critic_gradients import critic_step_gradients, mlp_layers
from wganlab.core.nets import MaskedLeakyReLU, mlp_critic
from wganlab.training.loop import Trainer

SMALL = dict(hidden=48, depth=3, batch_size=64, steps=1, eval_every=0, log_every=1, eval_samples=100, w1_samples=100)


def _one_critic_step(preset, critic_backward, **overrides):
    trainer = Trainer(resolve(preset, dict(SMALL, critic_backward=critic_backward, **overrides)))
    stats = trainer.critic_step()
    return trainer, [p.grad.clone() for p in trainer.critic.parameters()], stats


@pytest.mark.parametrize("preset,overrides", [
    ("wgan-gp", {}),                                       # Wasserstein loss + two-sided penalty
    ("wgan-lp", {}),                                       # one-sided penalty
    ("wgan", {}),                                          # clipping: no penalty, a projection
    ("ns-gan", {}),                                        # logistic loss, no constraint
    ("hinge", {"constraint": "gradient-penalty"}),  # the preset's spectral norm takes autograd
    ("lsgan", {}),
])
def test_hand_written_critic_step_gives_autograds_gradients_and_statistics(preset, overrides):
    fast, fast_grads, fast_stats = _one_critic_step(preset, "auto", **overrides)
    plain, plain_grads, plain_stats = _one_critic_step(preset, "autograd", **overrides)
    assert fast._critic_layers is not None and plain._critic_layers is None
    for fast_grad, plain_grad in zip(fast_grads, plain_grads):
        torch.testing.assert_close(fast_grad, plain_grad, rtol=1e-4, atol=1e-6)
    assert fast_stats.keys() == plain_stats.keys()
    for key in fast_stats:
        torch.testing.assert_close(fast_stats[key], plain_stats[key], rtol=1e-5, atol=1e-6, msg=key)
    # after the optimiser step (and clipping) the critics are the same too
    for fast_param, plain_param in zip(fast.critic.parameters(), plain.critic.parameters()):
        torch.testing.assert_close(fast_param, plain_param, rtol=1e-5, atol=1e-6)


def test_the_comparison_can_fail_a_changed_penalty_weight_changes_the_gradients():
    _, base, _ = _one_critic_step("wgan-gp", "auto")
    _, heavier, _ = _one_critic_step("wgan-gp", "autograd", gp_weight=11.0)
    assert max(float((a - b).abs().max()) for a, b in zip(base, heavier)) > 1e-3


def test_leaky_slopes_and_stacked_runs_match_autograd_per_run():
    # Two runs stacked (K = 2) with LeakyReLU 0.2 critics, each checked against its own
    # autograd critic step: Wasserstein loss + weight * mean (||grad|| - 1)^2.
    torch.manual_seed(0)
    critics = [torch.nn.Sequential(torch.nn.Linear(3, 16), MaskedLeakyReLU(0.2), torch.nn.Linear(16, 16),
                                   MaskedLeakyReLU(0.2), torch.nn.Linear(16, 1)) for _ in range(2)]
    layers = [mlp_layers(c) for c in critics]
    slopes = layers[0][1]
    assert slopes == [0.2, 0.2]
    real, fake, eps = torch.randn(2, 32, 3), torch.randn(2, 32, 3) + 1, torch.rand(2, 32, 1)
    weights = torch.tensor([10.0, 0.5])
    step = critic_step_gradients(
        [torch.stack([lay[0][i].weight.detach() for lay in layers]) for i in range(3)],
        [torch.stack([lay[0][i].bias.detach() for lay in layers]) for i in range(3)], slopes, real, fake, eps,
        lambda r, f: ((f.mean(dim=(1, 2)) - r.mean(dim=(1, 2))).sum(), {}),
        lambda norms: ((weights * (norms - 1).pow(2).mean(dim=1)).sum(), {}))
    for k, critic in enumerate(critics):
        points = (eps[k] * real[k] + (1 - eps[k]) * fake[k]).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
        loss = critic(fake[k]).mean() - critic(real[k]).mean() + weights[k] * (g.norm(dim=1) - 1).pow(2).mean()
        grads = torch.autograd.grad(loss, list(critic.parameters()))
        for i in range(3):
            torch.testing.assert_close(step.weight_grads[i][k], grads[2 * i], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(step.bias_grads[i][k], grads[2 * i + 1], rtol=1e-4, atol=1e-6)


def test_only_plain_mlp_critics_take_the_hand_written_path():
    assert mlp_layers(mlp_critic(2, 8, 2)) is not None
    assert mlp_layers(mlp_critic(2, 8, 2, norm="layer")) is None
    assert mlp_layers(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))) is None
    for preset, overrides in (("wgan-gp", dict(critic_backward="autograd")), ("wgan-gp", dict(constraint="r1")),
                              ("wgan-gp", dict(constraint="spectral-norm")), ("began", {})):
        trainer = Trainer(resolve(preset, dict(SMALL, **overrides)))
        assert trainer._critic_layers is None, (preset, overrides)


def test_critic_phase_equals_n_critic_steps_one_after_another():
    # The phase draws all n steps' data first (in critic_step's order) and makes the fake
    # batches in one generator forward; the critic must end where n critic_step calls leave it.
    phase = Trainer(resolve("wgan-gp", SMALL))
    steps = Trainer(resolve("wgan-gp", SMALL))
    assert not phase._generator_has_batch_statistics
    phase_stats = phase.critic_phase(5)
    step_stats = [steps.critic_step() for _ in range(5)]
    for a, b in zip(phase_stats, step_stats):
        torch.testing.assert_close(a["d_loss"], b["d_loss"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a["penalty"], b["penalty"], rtol=1e-5, atol=1e-6)
    for a, b in zip(phase.critic.parameters(), steps.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # and the rng stream is where five critic steps leave it: the next draws agree
    assert torch.equal(phase.draw_noise(4), steps.draw_noise(4))
    # one step fewer is a different critic: the comparison can fail
    fewer = Trainer(resolve("wgan-gp", SMALL))
    fewer.critic_phase(4)
    assert max(float((a - b).detach().abs().max()) for a, b in zip(fewer.critic.parameters(),
                                                                steps.critic.parameters())) > 1e-6


def test_bf16_hand_written_step_is_as_close_to_fp32_as_bf16_autocast():
    # Under --precision bf16 the hand-written step runs its matmuls in bfloat16 and the penalty
    # in float32, as autocast does: its gradients are as far from the fp32 ones as autocast's.
    def gradients(**overrides):
        trainer = Trainer(resolve("wgan-gp", dict(SMALL, hidden=128, batch_size=256, **overrides)))
        for _ in range(3):
            stats = trainer.critic_step()
        return trainer, [p.grad.clone() for p in trainer.critic.parameters()][:-1], stats  # last: a zero bias grad

    _, exact, exact_stats = gradients(critic_backward="autograd")
    hand, hand_grads, hand_stats = gradients(precision="bf16")
    _, autocast, _ = gradients(precision="bf16", critic_backward="autograd")
    assert hand._critic_layers is not None
    hand_error = [float((a - b).norm() / b.norm()) for a, b in zip(hand_grads, exact)]
    autocast_error = [float((a - b).norm() / b.norm()) for a, b in zip(autocast, exact)]
    assert max(hand_error) < 0.05 and max(hand_error) < 1.5 * max(autocast_error)
    assert min(hand_error) > 1e-4  # bf16 really ran: the fp32 step agrees to 1e-6
    torch.testing.assert_close(hand_stats["penalty"], exact_stats["penalty"], rtol=2e-2, atol=1e-3)
