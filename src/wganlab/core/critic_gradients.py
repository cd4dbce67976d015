"""A critic step's parameter gradients for plain MLP critics, written out as explicit matmuls.

For a critic that is ``Linear -> MaskedLeakyReLU -> ... -> Linear`` the whole WGAN-GP critic
step (the losses on real and fake, the input gradient at the interpolates, and the backward
of the penalty through that gradient) is a handful of batched matmuls. Written by hand
they come to four per layer instead of autograd's seven: one forward over real, fake and
interpolates stacked, one backward chain shared by the loss and the input gradient, one
chain for the penalty's double backward, one weight gradient for all three. Autograd needs
more because it cannot fuse what it records as separate graphs, and its engine and graph
building cost as much as the small matmuls of a 3x128 critic. The activation's slope mask
is piecewise constant, so the input gradient is a linear map of the weights; writing it down
needs no second-order rule of any op.

Every tensor carries a leading run dimension K: the trainer passes its one critic as K = 1,
``wganlab.training.sweep`` passes K stacked critics, and the same code serves both.

Notation, for layers l = 1..L, W_l (K, n_l, n_{l-1}), b_l (K, n_l):
    forward    a_l = h_{l-1} W_l^T + b_l,  h_l = a_l * s_l,  s_l = 1 where a_l > 0, else slope;
               the score is a_L.
    backward   J_L = [dLoss/dscore (real, fake rows); 1 (interpolate rows)],
               J_{l-1} = (J_l W_l) * s_{l-1}; on the interpolate rows J is the input-gradient
               chain, and the input gradient is g = J_1 W_1 there.
    penalty    G = dP/dg, then upwards U_0 = G, U_l = (U_{l-1} W_l^T) * s_l: dP/dW_l = J_l^T U_{l-1}
               on the interpolate rows (the masks are constants, so the penalty has no bias term).
    gradients  dW_l = J_l^T H'_{l-1}, H' = h on the real and fake rows and U on the
               interpolate rows; db_l = the sum of J_l over the real and fake rows.
The result equals autograd's up to float rounding (``tests/test_critic_gradients.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from wganlab.core.constraints import gradient_norms
from wganlab.core.nets import MaskedLeakyReLU


@dataclass
class CriticStep:
    """What one hand-written critic step computed.

    Attributes:
        weight_grads, bias_grads: per layer, (K, n_l, n_{l-1}) and (K, n_l).
        scores: (K, 2B, 1) scores of the real then the fake rows (detached).
        loss_stats: the ``critic_loss`` function's statistics.
        penalty_stats: the ``penalty`` function's statistics ({} without a penalty).
    """

    weight_grads: list[torch.Tensor]
    bias_grads: list[torch.Tensor]
    scores: torch.Tensor
    loss_stats: dict
    penalty_stats: dict


def mlp_layers(critic: nn.Module) -> tuple[list[nn.Linear], list[float]] | None:
    """(the Linear layers, the activation slopes between them) of a plain MLP critic, else None.

    Plain: an ``nn.Sequential`` of Linear, MaskedLeakyReLU, ..., Linear with one output, no
    norm layers, no parametrisation (spectral norm) and no hooks on it.
    """
    plain = plain_mlp(critic, MaskedLeakyReLU)
    if plain is None or plain[0][-1].out_features != 1:
        return None
    layers, activations = plain
    return layers, [act.negative_slope for act in activations]


def plain_mlp(net: nn.Module, activation: type) -> tuple[list[nn.Linear], list[nn.Module]] | None:
    """(Linear layers, activations) of ``net`` when it is an ``nn.Sequential`` of Linear,
    ``activation``, ..., Linear, every Linear with a bias, with no norm layer, no parametrisation
    (spectral norm) and no hooks on it; else None. The hand-written steps' shared test."""
    if not isinstance(net, nn.Sequential) or len(net) % 2 != 1:
        return None
    modules = list(net)
    layers, activations = modules[0::2], modules[1::2]
    if not all(type(layer) is nn.Linear and layer.bias is not None for layer in layers):
        return None
    if not all(type(act) is activation for act in activations):
        return None
    if any(getattr(m, "parametrizations", None) or m._forward_hooks or m._forward_pre_hooks
           or m._backward_hooks for m in [net, *modules]):
        return None
    return layers, activations


def mlp_forward(weights, biases, slopes, x: torch.Tensor):
    """Scores (K, R, 1) of x (K, R, n_0) and the inputs h_0..h_{L-1} of each layer.

    The activations are torch's (in place on the pre-activations); their slopes s_l are read
    back from h_l by :func:`times_slope`, so no mask tensor is made (a float mask cost a
    comparison and a conversion per layer, ~25 us at 768 x 128 on 2 cores).
    """
    inputs = [x]
    h = x
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        a = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        if index == len(weights) - 1:
            return a, inputs
        h = torch.relu_(a) if slopes[index] == 0 else nn.functional.leaky_relu_(a, slopes[index])
        inputs.append(h)
    raise ValueError("an MLP needs at least one layer")


def times_slope(grad: torch.Tensor, h: torch.Tensor, slope: float) -> torch.Tensor:
    """grad * s, s = 1 where the activation's output h > 0, else ``slope`` (h > 0 exactly where
    its input was): torch's own backward of relu / leaky_relu, one kernel, no mask."""
    if slope == 0:
        return torch.ops.aten.threshold_backward(grad, h, 0)
    return torch.ops.aten.leaky_relu_backward(grad, h, slope, True)


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # (K, R, 1) x (K, 1, n), the score layer's outer product, is faster as a broadcast product
    return a * b if a.shape[-1] == 1 else torch.bmm(a, b)


def critic_step_gradients(weights: list[torch.Tensor], biases: list[torch.Tensor], slopes: list[float],
                          real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None,
                          critic_loss: Callable, penalty: Callable | None, *,
                          loss_sample_grads: Callable | None = None, penalty_grad: Callable | None = None,
                          compute_dtype: torch.dtype | None = None) -> CriticStep:
    """Parameter gradients of critic_loss(real, fake) + penalty(input gradients at interpolates).

    Args:
        weights, biases, slopes: the layers (see :func:`mlp_layers`), weights (K, n_l, n_{l-1}),
            biases (K, n_l).
        real, fake: (K, B, n_0) batches.
        eps: (K, B, 1) interpolation weights, x_hat = eps real + (1 - eps) fake; None without
            a penalty.
        critic_loss: (real scores (K, B, 1), fake scores (K, B, 1)) -> (scalar to minimise,
            stats); the sum of the runs' losses when K > 1.
        penalty: (gradient norms (K, B)) -> (scalar to add, stats); None without a penalty.
        loss_sample_grads: for a critic loss that is a mean over the batch of per-sample terms,
            (real scores, fake scores) -> those terms' derivatives, elementwise
            (``Objective.critic_sample_grads``): dLoss/dscore is them over the batch size. None
            takes dLoss/dscore from ``critic_loss`` through autograd.
        penalty_grad: (gradient norms (K, B)) -> d penalty / d norms (K, B), in closed form;
            None takes it through autograd.
        compute_dtype: the matmuls' dtype (torch.bfloat16 under ``--precision bf16``), None: the
            inputs' dtype. As under autocast, the matmuls and activations run in it and the
            interpolates, the losses, the gradient norms, the penalty and the returned gradients
            in float32.
    """
    batch = real.shape[1]
    penalised = eps is not None and penalty is not None
    low = compute_dtype or real.dtype
    weights = [weight.to(low) for weight in weights]
    biases = [bias.to(low) for bias in biases]
    rows = [real, fake]
    if penalised:
        rows.append(eps * real + (1 - eps) * fake)
    scores, inputs = mlp_forward(weights, biases, slopes, torch.cat(rows, dim=1).to(low))

    # dLoss/dscore in closed form, else from the objective itself through autograd on the
    # (K, 2B, 1) scores only (the closed forms save the autograd engine's fixed cost per step)
    loss_scores = scores[:, :2 * batch].detach().float()
    if loss_sample_grads is not None:
        _, loss_stats = critic_loss(loss_scores[:, :batch], loss_scores[:, batch:])
        score_grad = torch.cat(loss_sample_grads(loss_scores[:, :batch], loss_scores[:, batch:]), dim=1).div_(batch)
    else:
        loss_scores.requires_grad_(True)
        with torch.enable_grad():
            loss, loss_stats = critic_loss(loss_scores[:, :batch], loss_scores[:, batch:])
            (score_grad,) = torch.autograd.grad(loss, loss_scores)
        loss_scores = loss_scores.detach()
    if penalised:
        score_grad = torch.cat([score_grad, torch.ones_like(score_grad[:, :batch])], dim=1)
    score_grad = score_grad.to(low)

    # downwards: J_l for l = L..1, shared by the loss's backward and the input-gradient chain
    chain = [score_grad]
    for index in range(len(weights) - 1, 0, -1):
        chain.append(times_slope(_matmul(chain[-1], weights[index]), inputs[index], slopes[index - 1]))
    chain.reverse()  # chain[l] = J_{l+1}

    penalty_stats: dict = {}
    if penalised:
        input_grad = torch.bmm(chain[0][:, 2 * batch:], weights[0]).float()
        if penalty_grad is not None:
            norms = gradient_norms(input_grad, batch_dims=2)
            _, penalty_stats = penalty(norms)
            # d P / d g = dP/d||g|| g / ||g||, the norm's own gradient
            upward = input_grad.mul_((penalty_grad(norms) / norms).unsqueeze(-1))
        else:
            with torch.enable_grad():
                input_grad.requires_grad_(True)
                norms = gradient_norms(input_grad, batch_dims=2)
                value, penalty_stats = penalty(norms)
                (upward,) = torch.autograd.grad(value, input_grad)
        # upwards: U_l on the interpolate rows replaces h_l there (h of the interpolates is spent)
        upward = upward.to(low)
        inputs[0][:, 2 * batch:] = upward  # inputs[0] is the concatenation made above
        for index in range(1, len(weights)):
            upward = times_slope(torch.bmm(upward, weights[index - 1].transpose(1, 2)),
                                  inputs[index][:, 2 * batch:], slopes[index - 1])
            inputs[index][:, 2 * batch:] = upward

    weight_grads = [torch.bmm(j.transpose(1, 2), h).float() for j, h in zip(chain, inputs)]
    bias_grads = [j[:, :2 * batch].sum(dim=1, dtype=torch.float32) for j in chain]
    return CriticStep(weight_grads, bias_grads, loss_scores, loss_stats, penalty_stats)
