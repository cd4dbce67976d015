"""clip-vs-gp: weight clipping makes a deep critic's gradients explode or vanish; the penalty does not.

Gulrajani et al. 2017, Figure 1, both panels, with the generator held fixed at the real
data plus unit-variance Gaussian noise and every critic trained to optimality:

* (b) a critic of 12 ReLU layers of 512 units on the swiss roll, clipped at c = 0.1, 0.01
  and 0.001 (RMSprop 5e-5, the WGAN paper) or penalised (lambda 10, Adam 1e-4 (0.5, 0.9),
  the WGAN-GP paper). The figure is the norm of the gradient of the critic loss with
  respect to successive layers of activations. Once clipping pins the weights at +-c,
  each layer scales the backward signal by about c sqrt(512) times a constant: above one it
  grows towards the input (c = 0.1), below one it dies (c = 0.01, 0.001). Under the penalty
  the norms stay within a narrow band. Also the histogram of the clipped weights.
* (a) the value surfaces of the authors' toy critic (3 ReLU layers of 512 units) on
  ring8, grid25 and the swiss roll, clipped at 0.01 or penalised (lambda 0.1, the value of
  the authors' toy script): clipping gives a simple function that misses the data's shape.

"Trained to optimality" is a stated criterion here (:func:`converged`): the critic's estimate
E f(real) - E f(fake) on a fixed evaluation batch, read every 50 steps, has a mean over the
last 500 steps within 1% of the mean over the 500 before (or within the reads' own scatter);
a critic that does not get there within the step cap is reported as such.

Reference: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Section 3.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wganlab.core.constraints import clip_weights, gradient_penalty
from wganlab.core.nets import mlp_critic
from wganlab.core.objectives import wasserstein_critic_loss
from wganlab.data.toy import make_toy
from wganlab.experiments.base import check, pyplot, register, result, save_figure

CLIPS = (0.1, 0.01, 0.001)
SURFACE_DATA = ("ring8", "grid25", "swissroll")
READ_EVERY, WINDOW, TOLERANCE = 50, 500, 0.01


def converged(estimates: list[float], read_every: int = READ_EVERY, window: int = WINDOW,
              tolerance: float = TOLERANCE) -> bool:
    """True when the mean estimate over the last ``window`` steps (read every ``read_every``)
    differs from the mean over the ``window`` before by less than ``tolerance`` of its
    magnitude, or by less than twice the standard error of that difference (a stochastic
    critic's reads scatter by a few percent; a change the reads cannot tell from their own
    scatter is not a change)."""
    n = window // read_every
    if len(estimates) < 2 * n:
        return False
    last, before = np.array(estimates[-n:]), np.array(estimates[-2 * n:-n])
    change = abs(last.mean() - before.mean())
    standard_error = math.sqrt((last.var(ddof=1) + before.var(ddof=1)) / n)
    return bool(change <= tolerance * abs(last.mean()) or change <= 2 * standard_error)


def activation_gradient_norms(critic: torch.nn.Sequential, real: torch.Tensor, fake: torch.Tensor) -> list[float]:
    """||d(critic loss) / d h_l|| for the output h_l of each hidden layer (after its ReLU), input to output."""
    hidden_states = []
    x = torch.cat([real, fake])
    modules = list(critic)
    for i, module in enumerate(modules):
        x = module(x)
        if i + 1 < len(modules) and not isinstance(module, torch.nn.Linear):  # after each activation
            x.retain_grad()
            hidden_states.append(x)
    scores = x.squeeze(-1)
    loss = scores[len(real):].mean() - scores[:len(real)].mean()
    loss.backward()
    return [float(h.grad.norm()) for h in hidden_states]


def train_critic(data_name: str, constraint: str, c: float, depth: int, gp_weight: float, max_steps: int,
                 batch: int, seed: int = 0, hidden: int = 512, min_steps: int = 1000) -> dict:
    """Trains one critic against real + N(0, 1) noise until :func:`converged` or ``max_steps``.

    Returns the estimates read on the way, the step it stopped at, whether it converged, the
    per-layer activation-gradient norms of the final critic (on a fixed batch) and the critic.
    """
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    data = make_toy(data_name)
    # float64 for c = 0.001 only: the signal shrinks ~60x a layer there, and float32 rounds the
    # first layers' gradients to exactly zero (float64 costs ~2.5x the time)
    dtype = torch.float64 if constraint == "clip" and c <= 0.001 else torch.float32
    critic = mlp_critic(2, hidden, depth).to(dtype)
    if constraint == "clip":
        optimizer = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
        pinned = float(clip_weights(critic, c))  # WGAN clips from the start
    else:
        optimizer = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
    real_eval = data.sample(1024, generator=rng).to(dtype)
    fake_eval = (data.sample(1024, generator=rng) + torch.randn(1024, 2, generator=rng)).to(dtype)
    estimates, step = [], 0
    while True:
        if step % READ_EVERY == 0:
            with torch.no_grad():
                estimates.append(float(critic(real_eval).mean() - critic(fake_eval).mean()))
            if (step >= min_steps and converged(estimates)) or step >= max_steps:
                break
        real = data.sample(batch, generator=rng).to(dtype)
        fake = (data.sample(batch, generator=rng) + torch.randn(batch, 2, generator=rng)).to(dtype)
        loss = wasserstein_critic_loss(critic(real), critic(fake)).total
        if constraint == "gp":
            loss = loss + gradient_penalty(critic, real, fake, gp_weight, rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if constraint == "clip":
            pinned = float(clip_weights(critic, c))
        step += 1
    out = {"estimates": estimates, "steps": step, "converged": converged(estimates), "critic": critic,
           "layer_grad_norms": activation_gradient_norms(critic, real_eval[:256], fake_eval[:256])}
    critic.zero_grad()
    if constraint == "clip":
        out["pinned_fraction"] = pinned
    return out


def _surface(critic, resolution: int, bound: float):
    xs = torch.linspace(-bound, bound, resolution)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        values = critic(grid.to(next(critic.parameters()).dtype)).reshape(resolution, resolution)
    return xs.numpy(), values.numpy()


def _settings(quick: bool) -> dict:
    if quick:  # the pinned weights' scale is there from the first step: the paper's width, few steps
        return dict(deep_steps=4, deep_min=0, surface_steps=60, surface_min=0, batch=32, surface_data=("swissroll",),
                    surface_depth=3, surface_hidden=128)
    return dict(deep_steps=3000, deep_min=1000, surface_steps=4000, surface_min=1000, batch=64,
                surface_data=SURFACE_DATA, surface_depth=3, surface_hidden=512)


@register("clip-vs-gp", "a 12-layer critic's gradient norms per layer under weight clipping (c = 0.1, 0.01, 0.001) "
                        "and the gradient penalty, trained to optimality; the value surfaces of toy critics", seconds=586)
def run(quick: bool, out: Path) -> dict:
    st = _settings(quick)
    runs = {f"clip {c}": train_critic("swissroll", "clip", c, 12, 0.0, st["deep_steps"], st["batch"],
                                      min_steps=st["deep_min"]) for c in CLIPS}
    runs["gradient penalty"] = train_critic("swissroll", "gp", 0.0, 12, 10.0, st["deep_steps"], st["batch"],
                                            min_steps=st["deep_min"])
    # log10 of (the first hidden layer's gradient norm / the last one's): > 0 growing towards the
    # input; all twelve hidden layers are 512 wide, so their norms compare
    floor = 1e-300  # a norm that underflowed to zero counts as vanished
    spans = {name: math.log10(max(r["layer_grad_norms"][0], floor) / max(r["layer_grad_norms"][-1], floor))
             for name, r in runs.items()}
    pinned = {name: r["pinned_fraction"] for name, r in runs.items() if "pinned_fraction" in r}
    surfaces = {(data, constraint): train_critic(data, constraint, 0.01, st["surface_depth"], 0.1,
                                                 st["surface_steps"], st["batch"], hidden=st["surface_hidden"],
                                                 min_steps=st["surface_min"])
                for data in st["surface_data"] for constraint in ("clip", "gp")}

    checks = [
        check("clip 0.1: log10(gradient norm at hidden layer 1 / at hidden layer 12)", spans["clip 0.1"],
              spans["clip 0.1"] > 1, "explodes towards the input: > 1"),
        check("clip 0.01: log10(gradient norm at hidden layer 1 / at hidden layer 12)", spans["clip 0.01"],
              spans["clip 0.01"] < -1, "vanishes towards the input: < -1"),
        check("clip 0.001: log10(gradient norm at hidden layer 1 / at hidden layer 12)", spans["clip 0.001"],
              spans["clip 0.001"] < -1, "vanishes towards the input: < -1"),
        check("gradient penalty: log10(gradient norm at hidden layer 1 / at hidden layer 12)",
              spans["gradient penalty"], abs(spans["gradient penalty"]) < 1, "stable: within one decade"),
        check("clip 0.01: fraction of weights pinned at +-c", pinned["clip 0.01"], pinned["clip 0.01"] > 0.5,
              "most capacity pinned: > 0.5"),
    ]
    if not quick:
        trained = {**{f"deep {k}": r for k, r in runs.items()},
                   **{f"surface {d} {c}": r for (d, c), r in surfaces.items()}}
        checks.append(check("critics trained to optimality (the estimate's mean over 500 steps within 1% of the 500 "
                            "before, or within its scatter): [steps, converged]",
                            {name: [r["steps"], r["converged"]] for name, r in trained.items()},
                            all(r["converged"] for r in trained.values()),
                            "every critic converged before its step cap: otherwise its figure is not Figure 1's"))

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for name, r in runs.items():
        axes[0].semilogy(range(1, len(r["layer_grad_norms"]) + 1), r["layer_grad_norms"], "o-",
                         label=f"{name} ({r['steps']} steps{'' if r['converged'] else ', not converged'})")
    axes[0].set(xlabel="critic hidden layer (1 = nearest the input)", ylabel="||dL / dh_l||",
                title="gradient norms per layer, 12x512 ReLU critic, swiss roll")
    axes[0].legend(fontsize=8)
    for name, r in runs.items():
        if name in pinned:
            weights = torch.cat([p.detach().flatten() for p in r["critic"].parameters()]).numpy()
            c = float(name.split()[1])
            axes[1].hist(weights / c, bins=60, histtype="step", label=f"{name}: {100 * pinned[name]:.0f}% at +-c")
    axes[1].set(xlabel="weight / c", ylabel="count", title="weights under clipping, in units of c")
    axes[1].legend()
    plots = [save_figure(fig, out, "clip_vs_gp_gradients.png")]

    fig, axes = plt.subplots(2, len(st["surface_data"]), figsize=(4.3 * len(st["surface_data"]), 8.4), squeeze=False)
    for col, data in enumerate(st["surface_data"]):
        real = make_toy(data).sample(600, generator=torch.Generator().manual_seed(0)).numpy()
        bound = float(np.abs(real).max()) * 1.25
        for row, constraint in enumerate(("clip", "gp")):
            ax = axes[row][col]
            xs, values = _surface(surfaces[(data, constraint)]["critic"], 80 if not quick else 40, bound)
            ax.contourf(xs, xs, values, levels=25, cmap="RdBu_r")
            ax.scatter(real[:, 0], real[:, 1], s=2, c="black", alpha=0.5)
            ax.set_title(f"{data}: {'weight clipping c = 0.01' if constraint == 'clip' else 'gradient penalty'}")
            ax.set_aspect("equal")
    plots.append(save_figure(fig, out, "clip_vs_gp_surfaces.png"))

    figures = {"deep": {"depth": 12, "hidden": 512, "batch": st["batch"], "step_cap": st["deep_steps"],
                        "steps": {n: r["steps"] for n, r in runs.items()},
                        "converged": {n: r["converged"] for n, r in runs.items()}},
               "log10_span_input_over_output": spans, "pinned_fraction": pinned,
               "layer_grad_norms": {n: r["layer_grad_norms"] for n, r in runs.items()},
               "surfaces": {f"{d} {c}": {"steps": r["steps"], "converged": r["converged"],
                                         "final_estimate": r["estimates"][-1]} for (d, c), r in surfaces.items()}}
    claim = ("Under weight clipping a 12-layer critic's gradients explode (c = 0.1) or vanish (c = 0.01, 0.001) "
             "from layer to layer and most weights sit at +-c, while under the gradient penalty the per-layer "
             "gradient norms stay within a decade.")
    protocol = ("Gulrajani et al. 2017, Figure 1: critics trained to optimality against the real data plus "
                "unit-variance Gaussian noise; (b) 12 ReLU layers of 512 on the swiss roll, c in {0.1, 0.01, 0.001} "
                "with RMSprop 5e-5 or lambda 10 with Adam 1e-4 (0.5, 0.9), gradient norms with respect to each "
                "layer's activations; (a) 3x512 toy critics, c = 0.01 or lambda 0.1, value surfaces.")
    scaled = ("nothing but the step caps: optimality as a criterion (the estimate's mean over 500 steps within 1% "
              "of the 500 before, or within its scatter; at least "
              f"{st['deep_min']} steps), capped at {st['deep_steps']} steps for the deep critics and "
              f"{st['surface_steps']} for the toy ones; batch {st['batch']}"
              + ("; the quick version stops after a few steps and trains one smaller surface pair" if quick else ""))
    return result(claim, checks, figures, plots, protocol=protocol, scaled=scaled)
