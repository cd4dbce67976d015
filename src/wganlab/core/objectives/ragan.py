"""The relativistic average GAN (Jolicoeur-Martineau 2019, RaSGAN): D judges whether a real
sample is more realistic than the average fake one, and the generator's loss reads the real
scores too, so both players' gradients come from real and fake data.

With C the critic's raw score and D~(x_r) = sigmoid(C(x_r) - E C(x_f)), D~(x_f) = sigmoid(C(x_f) - E C(x_r)):

    L_D = -E log D~(x_r) - E log(1 - D~(x_f)) = E softplus(-(C_r - mean C_f)) + E softplus(C_f - mean C_r)
    L_G = -E log D~(x_f) - E log(1 - D~(x_r)) = E softplus(-(C_f - mean C_r)) + E softplus(C_r - mean C_f)
"""

from __future__ import annotations

import torch
from torch.nn.functional import softplus

from wganlab.core.objectives.base import CriticLoss, Objective


def ragan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> CriticLoss:
    """E softplus(-(C(x_r) - E C(x_f))) + E softplus(C(x_f) - E C(x_r))."""
    real = softplus(-(real_scores - fake_scores.mean())).mean()
    fake = softplus(fake_scores - real_scores.mean()).mean()
    return CriticLoss(real + fake, real, fake)


def ragan_generator_loss(fake_scores: torch.Tensor, real_scores: torch.Tensor) -> torch.Tensor:
    """The critic's loss with real and fake swapped: E softplus(-(C_f - mean C_r)) + E softplus(C_r - mean C_f)."""
    return softplus(-(fake_scores - real_scores.mean())).mean() + softplus(real_scores - fake_scores.mean()).mean()


ragan = Objective("ragan", ragan_critic_loss, ragan_generator_loss,
                  description="relativistic average GAN; the generator loss reads D(x) too",
                  generator_needs_real=True)
OBJECTIVES = (ragan,)
