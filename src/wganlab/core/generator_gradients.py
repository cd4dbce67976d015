"""A generator step's parameter gradients for a plain MLP generator against a plain MLP critic,
written out as explicit matmuls.

For ``Linear -> ReLU -> ... -> Linear`` generators scored by a critic that
``wganlab.core.critic_gradients.mlp_layers`` accepts, the generator's loss gradient is one
forward through both nets and one backward chain: through the critic down to its input (its
weights get no gradient in this phase) and on through the generator, a weight gradient and a
bias sum per generator layer. Autograd computes the same products; here they run without its
engine, its graph and the gradient accumulation (~0.4-0.6 ms of a 1.3 ms generator step of a
4x128 generator against a 3x128 critic at batch 256, 2 cores). dLoss/dscore is taken from the
objective itself by autograd on the (B, 1) scores alone, so every objective whose generator
loss reads only the fake scores works unchanged.

Notation, generator layers l = 1..L with inputs g_{l-1} (g_0 = z), critic layers m = 1..M with
inputs c_{m-1} (c_0 = x = G(z)):
    critic     J_M = dLoss/dscore, J_{m-1} = (J_m V_m) * s(c_{m-1}), dLoss/dx = J_1 V_1
    generator  K_L = dLoss/dx, dW_l = K_l^T g_{l-1}, db_l = sum over the batch of K_l,
               K_{l-1} = (K_l W_l) * relu'(g_{l-1})
The result equals autograd's up to float rounding (``tests/core/test_generator_gradients.py``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from wganlab.core.critic_gradients import plain_mlp, times_slope


def mlp_generator_layers(generator: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a plain MLP generator (``Linear, ReLU, ..., Linear``, every Linear
    with a bias, no norm layers, no hooks, no parametrisation), else None."""
    plain = plain_mlp(generator, nn.ReLU)
    return None if plain is None else plain[0]


def _forward(weights, biases, slopes, x: torch.Tensor):
    """Output of an MLP on x (B, n_0) and the inputs h_0..h_{L-1} of its layers."""
    inputs = [x]
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        a = torch.addmm(bias, inputs[-1], weight.t())
        if index == len(weights) - 1:
            return a, inputs
        inputs.append(torch.relu_(a) if slopes[index] == 0 else nn.functional.leaky_relu_(a, slopes[index]))
    raise ValueError("an MLP needs at least one layer")


@torch.no_grad()
def generator_step_gradients(generator_weights: list[torch.Tensor], generator_biases: list[torch.Tensor],
                             critic_weights: list[torch.Tensor], critic_biases: list[torch.Tensor],
                             critic_slopes: list[float], noise: torch.Tensor, generator_loss: Callable):
    """Parameter gradients of ``generator_loss(critic(G(noise)))`` for the generator.

    Args:
        generator_weights, generator_biases: per layer, (n_l, n_{l-1}) and (n_l,).
        critic_weights, critic_biases, critic_slopes: the critic's layers and activation slopes.
        noise: (B, latent) inputs.
        generator_loss: (fake scores (B, 1)) -> scalar loss.
    Returns:
        (weight gradients, bias gradients, the loss), one gradient per generator layer.
    """
    fake, g_inputs = _forward(generator_weights, generator_biases, [0.0] * len(generator_weights), noise)
    scores, c_inputs = _forward(critic_weights, critic_biases, critic_slopes, fake)
    scores = scores.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = generator_loss(scores.float())
        (chain,) = torch.autograd.grad(loss, scores)
    for index in range(len(critic_weights) - 1, 0, -1):
        chain = times_slope(torch.mm(chain, critic_weights[index]), c_inputs[index], critic_slopes[index - 1])
    chain = torch.mm(chain, critic_weights[0])  # dLoss/dx
    weight_grads, bias_grads = [], []
    for index in range(len(generator_weights) - 1, -1, -1):
        weight_grads.append(torch.mm(chain.t(), g_inputs[index]))
        bias_grads.append(chain.sum(0))
        if index:
            chain = times_slope(torch.mm(chain, generator_weights[index]), g_inputs[index], 0.0)
    return weight_grads[::-1], bias_grads[::-1], loss.detach()
