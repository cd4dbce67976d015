"""How one iteration of the game moves the two players: the update rules.

The trainer's loop calls ``rule.iteration(trainer, record)`` once per generator step; a rule
runs the trainer's own phases (``critic_step``, ``generator_step``) in its order and passes
each phase's statistics to ``record``. The rules differ only in how they order and combine
those phases:

* ``alternating``: n_critic critic steps, then one generator step (the usual GAN loop);
* ``optimistic``: the same loop, each optimiser step made optimistic,
  theta_{t+1} = theta_t + 2 delta_t - delta_{t-1}, delta_t being the base optimiser's step
  (optimistic mirror descent; with Adam, Daskalakis et al. 2018's Optimistic Adam);
* ``extragradient``: both players step to a look-ahead point, then each steps from its saved
  point with the gradient taken at the look-ahead point (Korpelevich 1976; Gidel et al. 2019);
* ``unrolled``: the generator is scored by the critic *after* k more critic steps, taken
  differentiably with ``torch.func.functional_call`` so that the generator's gradient flows
  through them (Metz et al. 2017).

References:
    Daskalakis, Ilyas, Syrgkanis, Zeng 2018, "Training GANs with Optimism".
    Gidel et al. 2019, "A Variational Inequality Perspective on Generative Adversarial Networks".
    Metz, Poole, Pfau, Sohl-Dickstein 2017, "Unrolled Generative Adversarial Networks".
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch.func import functional_call

class Alternating:
    """n_critic critic steps, then one generator step."""

    name = "alternating"
    description = "n_critic critic steps, then one generator step"

    def attach(self, trainer) -> None:
        """Called once, after the trainer has built its nets and optimisers."""

    def iteration(self, trainer, record) -> None:
        n_critic = trainer.config.n_critic
        # a trainer may run the n critic steps as one phase (the Trainer batches their draws);
        # any object with critic_step / generator_step (the bilinear game) serves as well
        phase = getattr(trainer, "critic_phase", None)
        for stats in phase(n_critic) if phase is not None else (trainer.critic_step() for _ in range(n_critic)):
            record(stats)
        record(trainer.generator_step())

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class OptimisticHooks:
    """Makes any torch optimiser optimistic: theta_{t+1} = theta_t + 2 delta_t - delta_{t-1}.

    delta_t is the step the base optimiser would take (-lr g_t for SGD), so with SGD this is
    theta_{t+1} = theta_t - 2 lr g_t + lr g_{t-1}. Installed as the optimiser's step hooks, so
    projections and schedules around ``step()`` see the optimistic parameters.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.before: list[torch.Tensor] = []
        self.previous: list[torch.Tensor] | None = None
        self.handles = [optimizer.register_step_pre_hook(self._pre), optimizer.register_step_post_hook(self._post)]

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _pre(self, optimizer, args, kwargs) -> None:
        self.before = [p.detach().clone() for p in self._params()]

    @torch.no_grad()
    def _post(self, optimizer, args, kwargs) -> None:
        deltas = [p - old for p, old in zip(self._params(), self.before)]
        previous = self.previous or [torch.zeros_like(d) for d in deltas]
        for p, old, delta, last in zip(self._params(), self.before, deltas, previous):
            p.copy_(old + 2 * delta - last)
        self.previous = deltas

    def state_dict(self) -> dict:
        return {"previous": self.previous}

    def load_state_dict(self, state: dict) -> None:
        self.previous = state["previous"]


class Optimistic(Alternating):
    name = "optimistic"
    description = "optimistic mirror descent, theta + 2 delta_t - delta_{t-1} (Optimistic Adam)"

    def attach(self, trainer) -> None:
        self.hooks = {"g": OptimisticHooks(trainer.opt_g), "d": OptimisticHooks(trainer.opt_d)}

    def state_dict(self) -> dict:
        return {name: hooks.state_dict() for name, hooks in self.hooks.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, hooks in self.hooks.items():
            hooks.load_state_dict(state[name])


@contextmanager
def stepping_from(optimizer: torch.optim.Optimizer, saved_params: list[torch.Tensor], saved_state: dict):
    """Within the block, the optimiser's next step first puts the parameters and the optimiser's
    state back to ``saved_*`` (keeping the gradients just computed elsewhere), then steps."""
    done = []

    @torch.no_grad()
    def restore(opt, args, kwargs):
        if done:
            return
        params = [p for group in opt.param_groups for p in group["params"]]
        for p, saved in zip(params, saved_params):
            p.copy_(saved)
        opt.load_state_dict(saved_state)
        done.append(True)

    handle = optimizer.register_step_pre_hook(restore)
    try:
        yield
    finally:
        handle.remove()


def _snapshot(optimizer: torch.optim.Optimizer):
    params = [p.detach().clone() for group in optimizer.param_groups for p in group["params"]]
    return params, copy.deepcopy(optimizer.state_dict())


class Extragradient(Alternating):
    """Look-ahead steps for both players, then each player's real step from its saved point.

    The critic's real step uses the gradient at the look-ahead point of both players; the
    generator's uses it at its own look-ahead point against the critic's updated weights
    (the alternating form: each phase reads the other player's latest weights). Optimiser
    moments advance once per iteration, with the look-ahead gradient. Needs n_critic = 1.
    """

    name = "extragradient"
    description = "both players step to a look-ahead point, then from their saved points (n_critic 1)"

    def iteration(self, trainer, record) -> None:
        saved_d, saved_g = _snapshot(trainer.opt_d), _snapshot(trainer.opt_g)
        record(trainer.critic_step())
        record(trainer.generator_step(update_ema=False))  # the look-ahead point is not a result
        with stepping_from(trainer.opt_d, *saved_d):
            record(trainer.critic_step())
        with stepping_from(trainer.opt_g, *saved_g):
            record(trainer.generator_step())


def _sqrt(v: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite slope at 0, which a dead unit's zero gradient would turn into NaN
    # (0 * inf); the offset changes the step by less than Adam's own eps.
    return (v + 1e-20).sqrt()


def _differentiable_step(optimizer: torch.optim.Optimizer, names: list[str], params: dict, grads,
                         moments: dict, step: int) -> dict:
    """One step of ``optimizer``'s rule as a function of ``params`` (graph kept), starting from
    the optimiser's current moments. Adam and RMSprop, the two optimisers the config offers."""
    group = optimizer.param_groups[0]
    lr = group["lr"]
    new = {}
    for name, grad in zip(names, grads):
        if isinstance(optimizer, torch.optim.Adam):
            beta1, beta2 = group["betas"]
            m, v = moments[name]
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            moments[name] = (m, v)
            m_hat = m / (1 - beta1 ** step)
            v_hat = v / (1 - beta2 ** step)
            new[name] = params[name] - lr * m_hat / (_sqrt(v_hat) + group["eps"])
        else:  # RMSprop
            (v,) = moments[name]
            v = group["alpha"] * v + (1 - group["alpha"]) * grad * grad
            moments[name] = (v,)
            new[name] = params[name] - lr * grad / (_sqrt(v) + group["eps"])
    return new


def unrolled_critic_scores(trainer, fake: torch.Tensor, steps: int) -> torch.Tensor:
    """The critic's scores of ``fake`` after ``steps`` differentiable critic updates.

    Each unrolled update draws fresh real data and fresh generator samples (with their graph
    to the generator), takes the trainer's critic loss (``trainer.critic_terms``: its objective
    plus its penalty) and the critic optimiser's rule from its current moments. The critic
    module itself is left untouched.

    Args:
        fake: (B, D) generated samples, still attached to the generator's graph.
    Returns:
        (B, 1) scores of the unrolled critic.
    """
    critic, optimizer = trainer.critic, trainer.opt_d
    named = dict(critic.named_parameters())
    names = list(named)
    params = {name: p.detach().requires_grad_(True) for name, p in named.items()}
    buffers = dict(critic.named_buffers())
    moments, step = {}, 1
    for name, p in named.items():
        state = optimizer.state.get(p, {})
        if isinstance(optimizer, torch.optim.Adam):
            moments[name] = (state.get("exp_avg", torch.zeros_like(p)).detach(),
                             state.get("exp_avg_sq", torch.zeros_like(p)).detach())
        else:
            moments[name] = (state.get("square_avg", torch.zeros_like(p)).detach(),)
        if "step" in state:
            step = int(state["step"]) + 1
    batch = trainer.local_batch  # the run's per-process batch (the global one under torchrun)

    for k in range(steps):
        def score(x, params=params):
            return functional_call(critic, {**params, **buffers}, (x,))

        real = trainer.draw_real(batch)
        unrolled_fake = trainer.generator(trainer.draw_noise(batch))
        loss = trainer.critic_terms(score, real, unrolled_fake).total  # the trainer's one composition
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True)
        params = _differentiable_step(optimizer, names, params, grads, moments, step + k)
    return functional_call(critic, {**params, **buffers}, (fake,))


class Unrolled(Alternating):
    """Alternating, with the generator scored by the critic unrolled ``steps`` updates ahead."""

    name = "unrolled"

    def __init__(self, steps: int):
        self.steps = steps

    def iteration(self, trainer, record) -> None:
        for _ in range(trainer.config.n_critic):
            record(trainer.critic_step())
        record(trainer.generator_step(score=lambda fake: unrolled_critic_scores(trainer, fake, self.steps)))


# name -> rule class, each with its one-line ``description``; unrolled is chosen by unroll_steps > 0
UPDATE_RULES = {rule.name: rule for rule in (Alternating, Optimistic, Extragradient)}


def make_update_rule(config) -> Alternating:
    """The rule a config asks for: ``update_rule``, or unrolled when ``unroll_steps`` > 0."""
    if config.unroll_steps > 0:
        return Unrolled(config.unroll_steps)
    if config.update_rule not in UPDATE_RULES:
        raise ValueError(f"unknown update_rule {config.update_rule!r}; choose one of: {', '.join(UPDATE_RULES)}")
    return UPDATE_RULES[config.update_rule]()
