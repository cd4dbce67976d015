import copy

import pytest
import torch
from torch.testing import assert_close

from wganlab.config import resolve
from wganlab.training.loop import Trainer
from wganlab.core.update_rules import Alternating, Extragradient, OptimisticHooks, unrolled_critic_scores

TINY = dict(hidden=16, depth=2, batch_size=32, eval_samples=200, w1_samples=100, log_every=1, eval_every=0)


def test_optimistic_sgd_step_is_two_gradients_minus_the_last_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = torch.optim.SGD([p], lr=0.1)
    OptimisticHooks(optimizer)
    for grad, expected in ((1.0, 0.8), (2.0, 0.5)):  # 1 - 2(0.1) ; 0.8 - 2(0.2) + 0.1
        p.grad = torch.tensor([grad])
        optimizer.step()
        assert_close(p.detach(), torch.tensor([expected]))


class BilinearGame:
    """min_x max_y x*y with the trainer's phase interface; its only equilibrium is (0, 0)."""

    def __init__(self, lr=0.1):
        self.x = torch.nn.Parameter(torch.tensor(1.0))
        self.y = torch.nn.Parameter(torch.tensor(1.0))
        self.opt_g = torch.optim.SGD([self.x], lr=lr)
        self.opt_d = torch.optim.SGD([self.y], lr=lr)
        self.config = type("Config", (), {"n_critic": 1})()

    def critic_step(self):
        self.opt_d.zero_grad()
        (-self.x.detach() * self.y).backward()
        self.opt_d.step()
        return {}

    def generator_step(self, update_ema=True):
        self.opt_g.zero_grad()
        (self.x * self.y.detach()).backward()
        self.opt_g.step()
        return {}

    def distance(self):
        return float(torch.stack([self.x, self.y]).detach().norm())


def _play(rule, steps=800, optimistic=False):
    game = BilinearGame()
    if optimistic:
        OptimisticHooks(game.opt_g), OptimisticHooks(game.opt_d)
    for _ in range(steps):
        rule.iteration(game, lambda stats: None)
    return game.distance()


def test_optimism_and_extragradient_converge_on_the_bilinear_game_where_plain_steps_cycle():
    start = 2 ** 0.5
    plain = _play(Alternating())
    assert 0.5 * start < plain < 2 * start  # alternating gradient steps orbit the equilibrium
    assert _play(Alternating(), optimistic=True) < 0.05 * start
    assert _play(Extragradient()) < 0.05 * start


def test_unrolled_scores_equal_a_critic_copy_trained_the_same_steps():
    config = resolve("ns-gan", dict(TINY, steps=1, constraint="none", unroll_steps=3))
    trainer = Trainer(config)
    trainer.critic_step()  # give Adam moments to start from
    fake = trainer.generator(trainer.draw_noise(8))
    critic_copy = copy.deepcopy(trainer.critic)
    optimizer_copy = torch.optim.Adam(critic_copy.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    optimizer_copy.load_state_dict(trainer.opt_d.state_dict())
    rng_state = trainer.rng.get_state()
    unrolled = unrolled_critic_scores(trainer, fake, steps=3)

    trainer.rng.set_state(rng_state)
    batch = config.batch_size
    for _ in range(3):
        real = trainer.draw_real(batch)
        with torch.no_grad():
            unrolled_fake = trainer.generator(trainer.draw_noise(batch))
        scores = critic_copy(torch.cat([real, unrolled_fake]))
        optimizer_copy.zero_grad()
        trainer.objective.critic(scores[:batch], scores[batch:]).total.backward()
        optimizer_copy.step()
    assert_close(unrolled, critic_copy(fake), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(unrolled, trainer.critic(fake), atol=1e-4)

    # the generator's gradient flows through the unrolled critic steps, not only through fake
    params = list(trainer.generator.parameters())
    (through,) = torch.autograd.grad(unrolled_critic_scores(trainer, trainer.generator(trainer.draw_noise(8)), 3).sum(),
                                     params[0])
    assert torch.isfinite(through).all() and through.abs().sum() > 0


@pytest.mark.parametrize("preset", ["unrolled", "optimistic", "extragradient", "began", "hinge", "wgan-lp", "r1",
                                    "dragan", "ttur", "lsgan", "sngan", "r2"])
def test_every_new_preset_trains_a_few_steps(preset):
    overrides = dict(TINY, steps=3, latent_dim=4)
    if preset == "unrolled":
        overrides["unroll_steps"] = 2
    trainer = Trainer(resolve(preset, overrides))
    summary = trainer.train()
    assert summary["steps"] == 3
    for key in ("d_loss", "g_loss", "w_estimate", "grad_norm_g", "sample_spread", "param_norm_d"):
        assert torch.isfinite(torch.tensor(trainer.last_train[key])), key
    if preset == "began":
        assert 0 <= trainer.last_train["began_k"] <= 1 and trainer.last_train["began_convergence"] > 0


def test_ema_is_the_exponential_average_of_generator_weights():
    trainer = Trainer(resolve(None, dict(TINY, steps=2, ema=0.9)))
    trainer.critic_step()
    trainer.generator_step()
    first = [p.detach().clone() for p in trainer.generator.parameters()]  # the first update copies
    trainer.critic_step()
    trainer.generator_step()
    for averaged, a, b in zip(trainer.ema.module.parameters(), first, trainer.generator.parameters()):
        assert_close(averaged.detach(), 0.9 * a + 0.1 * b.detach())
