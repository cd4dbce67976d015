import pytest
import torch
from torch import nn
from torch.testing import assert_close

from wganlab.core.constraints import (
    clip_weights,
    critic_input_gradient_norms,
    gradient_penalty,
    gradient_penalty_and_norms,
    make_constraint,
)


def _linear_critic(weight):
    critic = nn.Linear(len(weight), 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weight]))
        critic.bias.fill_(0.3)
    return critic


@pytest.mark.parametrize("weight, norm", [([0.6, 0.8], 1.0), ([2.0, 0.0], 2.0), ([0.3, -0.4], 0.5), ([3.0, 4.0], 5.0)])
def test_linear_critic_penalty_is_lambda_times_norm_minus_one_squared(weight, norm):
    critic = _linear_critic(weight)
    for trial in range(3):
        real, fake = torch.randn(32, 2) * (trial + 1), torch.randn(32, 2) + 5
        penalty = gradient_penalty(critic, real, fake, weight=10.0)
        assert_close(penalty, torch.tensor(10.0 * (norm - 1) ** 2), atol=1e-5, rtol=1e-5)


def test_penalty_norm_is_over_all_non_batch_dimensions_of_an_image_batch():
    # f(x) = sum(w * x) over (C, H, W): the input gradient is w for every sample, norm ||w||.
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)

    def critic(x):
        return (x * w).flatten(1).sum(1)

    real, fake = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    penalty, norms = gradient_penalty_and_norms(critic, real, fake, weight=1.0)
    assert_close(norms, torch.full((8,), float(w.norm())), atol=1e-5, rtol=1e-5)
    assert_close(penalty, (w.norm() - 1) ** 2, atol=1e-5, rtol=1e-5)


def test_interpolation_weight_is_drawn_per_sample():
    # f(x) = 0.5 ||x||^2 has gradient x: the norm at the interpolate is eps_i * ||real_i|| when fake = 0.
    def critic(x):
        return 0.5 * x.pow(2).flatten(1).sum(1)

    real = torch.ones(256, 2, 3)
    _, norms = gradient_penalty_and_norms(critic, real, torch.zeros_like(real), generator=torch.Generator().manual_seed(0))
    eps = norms / real[0].norm()
    assert eps.min() >= 0 and eps.max() <= 1
    assert eps.std() > 0.2  # one shared eps would give std 0; U[0,1] has std 0.289


def test_penalty_gradient_is_finite_when_the_critic_is_flat():
    critic = _linear_critic([0.0, 0.0])
    penalty = gradient_penalty(critic, torch.randn(4, 2), torch.randn(4, 2))
    penalty.backward()
    assert torch.isfinite(critic.weight.grad).all()
    # the epsilon inside the sqrt makes the norm 1e-6, not 0: 10 (1e-6 - 1)^2
    assert_close(penalty, torch.tensor(10.0 * (1e-6 - 1) ** 2), atol=1e-6, rtol=0)


def test_gradient_norms_of_a_known_function():
    points = torch.tensor([[3.0, 4.0], [0.0, 1.0]], requires_grad=True)
    norms = critic_input_gradient_norms(lambda x: 0.5 * x.pow(2).sum(1), points)
    assert_close(norms, torch.tensor([5.0, 1.0]))


def test_clipped_step_leaves_every_weight_in_range_and_reports_pinned_fraction():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.RMSprop(critic.parameters(), lr=0.5)  # a huge step pushes weights far out
    loss = critic(torch.randn(16, 2)).mean()
    loss.backward()
    optimizer.step()
    assert max(p.abs().max() for p in critic.parameters()) > 0.01
    pinned = clip_weights(critic, 0.01)
    assert max(p.abs().max() for p in critic.parameters()) <= 0.01
    n_at_bound = sum(int((p.abs() == 0.01).sum()) for p in critic.parameters())
    n_total = sum(p.numel() for p in critic.parameters())
    assert_close(pinned, torch.tensor(n_at_bound / n_total))
    assert 0.5 < float(pinned) <= 1.0


def test_clip_leaves_weights_inside_the_box_untouched():
    critic = _linear_critic([0.001, -0.002])
    critic.bias.data.fill_(0.0)
    before = critic.weight.detach().clone()
    assert float(clip_weights(critic, 0.01)) == 0.0
    assert_close(critic.weight.detach(), before)


def test_bad_constraint_values_are_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        gradient_penalty(_linear_critic([1.0, 0.0]), torch.zeros(2, 2), torch.zeros(2, 2), weight=-1.0)
    with pytest.raises(ValueError, match="must be > 0"):
        clip_weights(nn.Linear(2, 1), 0.0)
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(_linear_critic([1.0, 0.0]), torch.zeros(2, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="choose one of: none, gradient-penalty, clip, lipschitz-penalty"):
        make_constraint("spectral-typo")


def test_constraints_through_the_uniform_interface():
    critic = _linear_critic([2.0, 0.0])
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    value, stats = make_constraint("gradient-penalty", gp_weight=10.0).penalty(critic, real, fake)
    assert_close(value, torch.tensor(10.0), atol=1e-5, rtol=0)
    assert_close(stats["gp_grad_norm"], torch.tensor(2.0), atol=1e-5, rtol=0)
    value, stats = make_constraint("clip", clip=0.5).penalty(critic, real, fake)
    assert float(value) == 0.0 and stats == {}
    stats = make_constraint("clip", clip=0.5).project(critic)
    assert critic.weight.abs().max() <= 0.5 and float(stats["clipped_fraction"]) > 0
    value, stats = make_constraint("none").penalty(critic, real, fake)
    assert float(value) == 0.0 and make_constraint("none").project(critic) == {}


# -- one-sided, R1 / R2, DRAGAN, spectral norm -------------------------------------------------------

from wganlab.core.constraints import (  # noqa: E402
    dragan_penalty_and_norms,
    one_sided_penalty_and_norms,
    spectral_normalize,
    zero_centred_penalty_and_norms,
)


@pytest.mark.parametrize("weight, norm", [([0.6, 0.8], 1.0), ([2.0, 0.0], 2.0), ([0.3, -0.4], 0.5)])
def test_one_sided_penalty_charges_only_norms_above_one(weight, norm):
    penalty, norms = one_sided_penalty_and_norms(_linear_critic(weight), torch.randn(16, 2), torch.randn(16, 2))
    assert_close(penalty, torch.tensor(10.0 * max(0.0, norm - 1) ** 2), atol=1e-5, rtol=1e-5)
    assert_close(norms, torch.full((16,), norm), atol=1e-5, rtol=1e-5)


def test_r1_and_r2_are_half_gamma_squared_gradient_norm_on_real_or_fake():
    def critic(x):  # gradient x, so ||grad||^2 = ||x||^2
        return 0.5 * x.pow(2).sum(1)

    real, fake = torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    r1, _ = make_constraint("r1", gp_weight=10.0).penalty(critic, real, fake)
    r2, _ = make_constraint("r2", gp_weight=10.0).penalty(critic, real, fake)
    assert_close(r1, torch.tensor(5.0 * (25.0 + 1.0) / 2))
    assert_close(r2, torch.tensor(5.0 * (1.0 + 0.0) / 2), atol=1e-5, rtol=0)
    value, norms = zero_centred_penalty_and_norms(_linear_critic([2.0, 0.0]), torch.randn(8, 2), gamma=10.0)
    assert_close(value, torch.tensor(20.0), atol=1e-5, rtol=0)


def test_dragan_penalises_near_the_real_data():
    assert_close(dragan_penalty_and_norms(_linear_critic([2.0, 0.0]), torch.randn(32, 2))[0], torch.tensor(10.0),
                 atol=1e-5, rtol=0)

    def critic(x):  # gradient x: the norm is the distance of the penalised point from 0
        return 0.5 * x.pow(2).sum(1)

    real = torch.cat([torch.ones(128, 2), 3 * torch.ones(128, 2)])  # std(real) = 1.0 (to 3 places)
    _, norms = dragan_penalty_and_norms(critic, real, generator=torch.Generator().manual_seed(0))
    low = real.norm(dim=1)
    high = (real + 0.5 * real.std()).norm(dim=1)
    assert (norms >= low - 1e-5).all() and (norms <= high + 1e-5).all()
    assert (norms - low).std() > 0.05  # perturbations differ per sample


def test_spectral_norm_makes_every_layer_and_the_critic_1_lipschitz():
    torch.manual_seed(0)
    critic = spectral_normalize(nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                              nn.Linear(64, 1)))
    for _ in range(30):  # each training forward runs one power iteration
        critic(torch.randn(8, 2))
    for layer in (critic[0], critic[2], critic[4]):
        assert_close(torch.linalg.matrix_norm(layer.weight.detach(), ord=2), torch.tensor(1.0), atol=2e-2, rtol=0)
    points = torch.randn(256, 2, requires_grad=True)
    assert critic_input_gradient_norms(critic, points).max() <= 1.0 + 2e-2
    assert make_constraint("spectral-norm").penalty(critic, points, points)[0] == 0
    with pytest.raises(ValueError, match="no Linear or Conv"):
        spectral_normalize(nn.ReLU())


@pytest.mark.parametrize("sides", ["two", "one"])
def test_closed_form_penalty_gradients_equal_autograds_also_per_run(sides):
    from wganlab.core.constraints import (one_sided_penalty, one_sided_penalty_grad, two_sided_penalty,
                                     two_sided_penalty_grad)
    value_fn = two_sided_penalty if sides == "two" else one_sided_penalty
    grad_fn = two_sided_penalty_grad if sides == "two" else one_sided_penalty_grad
    norms = torch.tensor([0.2, 0.9, 1.0, 1.3, 2.5], requires_grad=True)
    (expected,) = torch.autograd.grad(value_fn(norms, 10.0), norms)
    assert_close(grad_fn(norms.detach(), 10.0), expected)
    # by hand, norm 2.5 of 5: 10 * 2 * 1.5 / 5 = 6 (both penalties charge it)
    assert float(grad_fn(norms.detach(), 10.0)[-1]) == pytest.approx(6.0)
    # K = 2 runs with their own weights
    stacked = torch.stack([norms.detach(), norms.detach().flip(0)]).requires_grad_(True)
    weights = torch.tensor([10.0, 0.5])
    (expected,) = torch.autograd.grad(value_fn(stacked, weights).sum(), stacked)
    assert_close(grad_fn(stacked.detach(), weights), expected)
