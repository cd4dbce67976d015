"""The one composition of a training step (``wganlab.training.step``)."""

import ast
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from wganlab.core.constraints import make_constraint
from wganlab.core.objectives import OBJECTIVES
from wganlab.training import step

SRC = Path(__file__).resolve().parents[2] / "src" / "wganlab"


def _linear_critic(weight):
    critic = torch.nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weight]))
        critic.bias.zero_()
    return critic


def test_critic_terms_are_the_objective_plus_the_penalty_by_hand():
    # a linear critic with ||w|| = 2 has ||grad f|| = 2 everywhere: the WGAN-GP penalty is exactly lambda (2 - 1)^2
    critic = _linear_critic([0.0, 2.0])
    real, fake = torch.tensor([[0.0, 1.0], [0.0, 3.0]]), torch.tensor([[0.0, -1.0], [0.0, 0.0]])
    terms = step.critic_terms(OBJECTIVES["wasserstein"], make_constraint("gradient-penalty", gp_weight=10.0),
                              critic, real, fake, torch.Generator().manual_seed(0))
    # scores 2, 6 (real) and -2, 0 (fake): -E f(x) + E f(G(z)) = -4 - 1 = -5
    assert_close(terms.losses.total, torch.tensor(-5.0))
    assert_close(terms.penalty_stats["penalty"], torch.tensor(10.0))
    assert_close(terms.total, torch.tensor(5.0))
    assert_close(terms.scores.reshape(-1), torch.tensor([2.0, 6.0, -2.0, 0.0]))
    unit = step.critic_terms(OBJECTIVES["wasserstein"], make_constraint("gradient-penalty", gp_weight=10.0),
                             _linear_critic([0.6, 0.8]), real, fake, torch.Generator().manual_seed(0))
    assert_close(unit.penalty_stats["penalty"], torch.tensor(0.0), atol=1e-6, rtol=0)


def test_critic_update_steps_then_projects():
    critic = _linear_critic([0.5, -0.5])
    optimizer = torch.optim.SGD(critic.parameters(), lr=1.0)
    constraint = make_constraint("clip", clip=0.01)
    terms = step.critic_terms(OBJECTIVES["wasserstein"], constraint, critic, torch.ones(4, 2), -torch.ones(4, 2))
    stats = step.critic_update(terms, constraint, critic, optimizer)
    assert critic.weight.abs().max() <= 0.01 and float(stats["clipped_fraction"]) > 0  # clipped after the step


def test_generator_loss_scores_real_data_only_for_games_that_read_it():
    calls = []

    def score(x):
        calls.append(len(x))
        return x.sum(dim=1, keepdim=True)

    fake, real = torch.zeros(3, 2), torch.ones(5, 2)
    step.generator_loss(OBJECTIVES["wasserstein"], score, fake, real)
    assert calls == [3]
    calls.clear()
    loss = step.generator_loss(OBJECTIVES["ragan"], score, fake, real)
    assert sorted(calls) == [3, 5]
    assert_close(loss, OBJECTIVES["ragan"].generator(score(fake), score(real)))
    with pytest.raises(ValueError, match="needs a real batch"):
        step.generator_loss(OBJECTIVES["ragan"], score, fake)


def test_only_the_step_module_adds_a_constraint_penalty_to_an_objective_loss():
    # every critic loss of the package goes through step.critic_terms: no other module calls a
    # constraint's .penalty(...) (the pieces in core define it)
    callers = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "penalty" \
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "constraint" or \
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "penalty" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "constraint":
                callers.append(str(path.relative_to(SRC)))
    assert sorted(set(callers)) == ["training/step.py"]
