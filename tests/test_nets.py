import pytest
import torch
from torch.testing import assert_close

from wganlab.constraints import gradient_penalty_and_norms
from wganlab.nets import conv_critic, conv_generator


@pytest.mark.parametrize("channels", [1, 3])
def test_conv_generator_maps_latent_to_images_in_range(channels):
    torch.manual_seed(0)
    g = conv_generator(latent_dim=16, channels=channels)
    x = g(torch.randn(5, 16) * 10)
    assert x.shape == (5, channels, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.05  # not a constant image


@pytest.mark.parametrize("norm", ["none", "layer"])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_critic_scores_each_sample_independently(channels, norm):
    torch.manual_seed(0)
    d = conv_critic(channels, norm)
    x = torch.randn(6, channels, 28, 28)
    scores = d(x)
    assert scores.shape == (6, 1)
    # per-sample: a sample's score does not depend on the rest of the batch (no BatchNorm)
    assert_close(d(x[:2]), scores[:2], atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in d.modules())


def test_conv_critic_refuses_wrong_shapes_and_norms():
    with pytest.raises(ValueError, match="28, 28"):
        conv_critic(1)(torch.randn(2, 784))
    with pytest.raises(ValueError, match="choose one of"):
        conv_critic(1, norm="batch")


def test_gradient_penalty_on_conv_critic_uses_per_sample_norms():
    torch.manual_seed(0)
    d = conv_critic(1)
    real, fake = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    penalty, norms = gradient_penalty_and_norms(d, real, fake, weight=10.0, generator=torch.Generator().manual_seed(1))
    assert norms.shape == (4,)
    assert_close(penalty, 10.0 * (norms - 1).pow(2).mean())
    # each norm equals the norm of that sample's own input gradient, computed alone
    eps = torch.rand((4, 1, 1, 1), generator=torch.Generator().manual_seed(1))
    x0 = (eps[0] * real[0] + (1 - eps[0]) * fake[0]).unsqueeze(0).requires_grad_(True)
    (g0,) = torch.autograd.grad(d(x0).sum(), x0)
    assert_close(norms[0], g0.norm(), atol=1e-5, rtol=1e-4)
