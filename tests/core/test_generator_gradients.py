"""The hand-written generator step (wganlab.core.generator_gradients) against autograd on the same nets."""

import pytest
import torch

from wganlab.config import resolve
from wganlab.core.generator_gradients import generator_step_gradients, mlp_generator_layers
from wganlab.core.nets import MaskedLeakyReLU, mlp_generator
from wganlab.training.loop import Trainer

from test_critic_gradients import SMALL  # the critic step's twin tests run the same small nets


def _one_generator_step(preset, critic_backward, **overrides):
    trainer = Trainer(resolve(preset, dict(SMALL, critic_backward=critic_backward, **overrides)))
    stats = trainer.generator_step()
    return trainer, [p.grad.clone() for p in trainer.generator.parameters()], stats


@pytest.mark.parametrize("preset,overrides", [
    ("wgan-gp", {}),                      # -E f(G(z))
    ("ns-gan", {}),                       # the non-saturating logistic loss
    ("lsgan", {}),
    ("wgan-gp-2d", {"depth": 4, "critic_depth": 2}),  # generator and critic of different depths
])
def test_hand_written_generator_step_gives_autograds_gradients_and_update(preset, overrides):
    fast, fast_grads, fast_stats = _one_generator_step(preset, "auto", **overrides)
    plain, plain_grads, plain_stats = _one_generator_step(preset, "autograd", **overrides)
    assert fast._generator_layers is not None and plain._generator_layers is None
    for fast_grad, plain_grad in zip(fast_grads, plain_grads):
        torch.testing.assert_close(fast_grad, plain_grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast_stats["g_loss"], plain_stats["g_loss"], rtol=1e-6, atol=1e-7)
    for fast_param, plain_param in zip(fast.generator.parameters(), plain.generator.parameters()):
        torch.testing.assert_close(fast_param, plain_param, rtol=1e-5, atol=1e-6)
    for fast_param, plain_param in zip(fast.critic.parameters(), plain.critic.parameters()):
        assert torch.equal(fast_param, plain_param)  # the critic is not updated in this phase


def test_leaky_critic_slopes_match_autograd_and_the_comparison_can_fail():
    torch.manual_seed(0)
    generator = mlp_generator(4, 3, 16, 2)
    critic = torch.nn.Sequential(torch.nn.Linear(3, 16), MaskedLeakyReLU(0.2), torch.nn.Linear(16, 1))
    layers = mlp_generator_layers(generator)
    noise = torch.randn(32, 4)

    def by_hand(loss):
        return generator_step_gradients([lay.weight for lay in layers], [lay.bias for lay in layers],
                                        [critic[0].weight, critic[2].weight], [critic[0].bias, critic[2].bias],
                                        [0.2], noise, loss)

    weight_grads, bias_grads, loss = by_hand(lambda s: -s.mean())
    expected = torch.autograd.grad(-critic(generator(noise)).mean(), list(generator.parameters()))
    for i in range(3):
        torch.testing.assert_close(weight_grads[i], expected[2 * i], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(bias_grads[i], expected[2 * i + 1], rtol=1e-4, atol=1e-6)
    doubled, _, _ = by_hand(lambda s: -2 * s.mean())  # a different loss: different gradients
    assert float((doubled[0] - expected[0]).abs().max()) > 1e-4


def test_only_plain_relu_mlp_generators_in_plain_games_take_the_hand_written_path():
    assert mlp_generator_layers(mlp_generator(2, 2, 8, 2)) is not None
    assert mlp_generator_layers(mlp_generator(2, 2, 8, 2, batch_norm=True)) is None
    assert mlp_generator_layers(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(),
                                                    torch.nn.Linear(8, 2))) is None
    for preset, overrides in (("wgan-gp", dict(critic_backward="autograd")), ("wgan-gp", dict(precision="bf16")),
                              ("wgan-gp", dict(pack=2)), ("ragan", {}), ("wgan-gp", dict(constraint="r1"))):
        trainer = Trainer(resolve(preset, dict(SMALL, **overrides)))
        assert trainer._generator_layers is None, (preset, overrides)
