"""The WGAN-GP training loop as popular per-model example repositories write it.

Written by us, for the same nets, batch and hyperparameters as ``wganlab``'s trainer, so that
``benchmarks/speed.py`` compares loops and not models. The habits it keeps on purpose:

* ``.item()`` on every loss of every step, appended to Python lists for logging;
* separate critic forwards for the real batch, the fake batch and the interpolates;
* the fake batch made with a graph and then ``.detach()``-ed, a fresh noise tensor each step;
* ``zero_grad()`` that fills the old gradients with zeros (``set_to_none=False``);
* ``requires_grad`` toggled parameter by parameter around the generator step;
* the optimisers' default single-tensor implementation on the CPU;
* the gradient norm with ``grads.norm(2, dim=1)``, no epsilon;
* torch's own ``nn.ReLU`` / ``nn.LeakyReLU`` in the critic (wganlab's critics use
  ``MaskedLeakyReLU``, the same function with a cheaper double backward).

It draws the real data, the noise and the interpolation weights from one seeded stream in the
same order as ``wganlab.trainer.Trainer`` and builds the nets under the same seed, so that the
same seed gives the same losses (``tests/test_speed.py`` checks it): the two loops compute the
same mathematics and differ only in how.

    python benchmarks/naive_loop.py --preset wgan-gp --steps 50
    python benchmarks/naive_loop.py --mnist --steps 200     # the MNIST MLP workload (mnist_workload)
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import autograd

from wganlab.config import TrainConfig, resolve
from wganlab.data.toy import make_toy
from wganlab.core.nets import MaskedLeakyReLU, mlp_critic, mlp_generator


def with_torch_activations(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` with each ``MaskedLeakyReLU`` replaced, in place, by the torch module users write."""
    for name, child in net.named_children():
        if isinstance(child, MaskedLeakyReLU):
            slope = child.negative_slope
            setattr(net, name, torch.nn.LeakyReLU(slope) if slope else torch.nn.ReLU())
        else:
            with_torch_activations(child)
    return net


class NaiveWGANGP:
    """WGAN-GP on a built-in toy distribution, the way example repositories write it.

    Args:
        config: a resolved config; uses latent_dim, hidden, depth, data, batch_size, n_critic,
            gp_weight, lr_g, lr_d, beta1, beta2 and seed (no EMA, no learning-rate decay).
        generator, critic: optional nets to train instead of the MLPs (the conv benchmark).
        sample_real: optional ``(n, rng) -> (n, ...)`` real batch sampler instead of the toy data.
    """

    def __init__(self, config: TrainConfig, generator=None, critic=None, sample_real=None):
        self.config = config
        torch.manual_seed(config.seed)
        self.dataset = None
        if sample_real is None:
            self.dataset = make_toy(config.data, radius=config.radius, sigma=config.sigma, spacing=config.spacing)
            sample_real = lambda n, rng: self.dataset.sample(n, generator=rng)  # noqa: E731
        self.sample_real = sample_real
        dim = self.dataset.dim if self.dataset is not None else None
        self.G = generator if generator is not None else mlp_generator(config.latent_dim, dim, config.hidden,
                                                                          config.depth)
        self.D = with_torch_activations(critic if critic is not None else mlp_critic(dim, config.hidden, config.depth))
        self.device = torch.device(config.device)  # as the example repositories do: .cuda() nets and batches
        self.G, self.D = self.G.to(self.device), self.D.to(self.device)
        self.optimizerG = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
        self.optimizerD = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
        self.rng = torch.Generator().manual_seed(config.seed)
        self.d_costs: list[float] = []
        self.w_distances: list[float] = []
        self.gradient_penalties: list[float] = []
        self.g_costs: list[float] = []

    def calc_gradient_penalty(self, real_data, fake_data):
        alpha = torch.rand(real_data.shape[0], *([1] * (real_data.dim() - 1)), generator=self.rng).to(self.device)
        interpolates = alpha * real_data + (1 - alpha) * fake_data
        interpolates.requires_grad_(True)
        disc_interpolates = self.D(interpolates)
        gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                                  grad_outputs=torch.ones(disc_interpolates.size(), device=self.device),
                                  create_graph=True, retain_graph=True, only_inputs=True)[0]
        gradients = gradients.view(gradients.size(0), -1)
        return ((gradients.norm(2, dim=1) - 1) ** 2).mean() * self.config.gp_weight

    def train_step(self) -> None:
        """One generator iteration: n_critic critic updates, then one generator update."""
        config = self.config
        for p in self.D.parameters():
            p.requires_grad = True
        for _ in range(config.n_critic):
            real_data = self.sample_real(config.batch_size, self.rng).to(self.device)
            self.D.zero_grad(set_to_none=False)
            D_real = self.D(real_data).mean()
            noise = torch.randn(config.batch_size, config.latent_dim, generator=self.rng).to(self.device)
            fake = self.G(noise).detach()
            D_fake = self.D(fake).mean()
            gradient_penalty = self.calc_gradient_penalty(real_data, fake)
            D_cost = D_fake - D_real + gradient_penalty
            D_cost.backward()
            self.optimizerD.step()
            Wasserstein_D = D_real - D_fake
            self.d_costs.append((D_fake - D_real).item())
            self.w_distances.append(Wasserstein_D.item())
            self.gradient_penalties.append(gradient_penalty.item())
        for p in self.D.parameters():
            p.requires_grad = False
        self.G.zero_grad(set_to_none=False)
        noise = torch.randn(config.batch_size, config.latent_dim, generator=self.rng).to(self.device)
        fake = self.G(noise)
        G_cost = -self.D(fake).mean()
        G_cost.backward()
        self.optimizerG.step()
        self.g_costs.append(G_cost.item())

    def train(self, steps: int) -> None:
        for iteration in range(steps):
            self.train_step()
            if iteration % 100 == 99:
                print(f"iter {iteration + 1}: D {self.d_costs[-1]:.4f} G {self.g_costs[-1]:.4f} "
                      f"W {self.w_distances[-1]:.4f}")

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        self.G.eval()
        try:
            z = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(seed))
            return self.G(z.to(self.device)).cpu()
        finally:
            self.G.train()


def mnist_workload(seed: int = 0, data_dir: str = "") -> NaiveWGANGP:
    """The MLP WGAN-GP on MNIST of the popular example repositories, written their way: G
    100-128-256-512-1024-784 with BatchNorm (``BatchNorm1d(n, 0.8)``, which sets eps = 0.8, as
    they write it), LeakyReLU 0.2, tanh; D 784-512-256-1; batch 64, Adam 2e-4 (0.5, 0.999),
    n_critic 5, lambda 10, the real batches from a shuffling DataLoader over the training digits."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from wganlab.data.images import mnist_dataset

    config = resolve("wgan-gp-mnist", dict(latent_dim=100, batch_size=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                                           beta2=0.999, n_critic=5, gp_weight=10.0, seed=seed, data_dir=data_dir))
    torch.manual_seed(seed)

    def block(n_in, n_out, normalize=True):
        return [nn.Linear(n_in, n_out), *([nn.BatchNorm1d(n_out, 0.8)] if normalize else []), nn.LeakyReLU(0.2)]

    generator = nn.Sequential(*block(100, 128, normalize=False), *block(128, 256), *block(256, 512),
                              *block(512, 1024), nn.Linear(1024, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    critic = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256),
                           nn.LeakyReLU(0.2), nn.Linear(256, 1))
    loader = DataLoader(TensorDataset(mnist_dataset(data_dir).images), batch_size=64, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    batches = iter(())

    def sample_real(n, rng):
        nonlocal batches
        batch = next(batches, None)
        if batch is None:  # a new epoch, reshuffled
            batches = iter(loader)
            batch = next(batches)
        return batch[0]

    return NaiveWGANGP(config, generator=generator, critic=critic, sample_real=sample_real)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="wgan-gp")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=None, help="width of both MLPs (default: the preset's)")
    parser.add_argument("--mnist", action="store_true", help="the MNIST workload of the example repositories "
                        "(mnist_workload); --preset and --hidden are then unused")
    args = parser.parse_args(argv)
    if args.mnist:
        loop = mnist_workload(args.seed)
    else:
        loop = NaiveWGANGP(resolve(args.preset, {"seed": args.seed, "hidden": args.hidden}))
    started = time.perf_counter()
    loop.train(args.steps)
    elapsed = time.perf_counter() - started
    print(f"{args.steps} generator steps in {elapsed:.2f} s: {args.steps / elapsed:.2f} steps/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
