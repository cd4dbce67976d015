"""bilinear-game: why simultaneous gradient steps spiral out of a saddle, and what fixes it.

Plain tensor code, no networks. Two games:

* min_x max_y x y from (1, 1): the update matrix of simultaneous descent has eigenvalues
  1 +- i eta, so the distance to the equilibrium grows by sqrt(1 + eta^2) per step;
  alternating updates have a unit-determinant matrix and circle; extragradient and
  optimistic descent contract by sqrt(1 - eta^2 + eta^4) and about that per step.
* The Dirac-GAN of Mescheder et al. 2018: data at 0, generator p_theta = delta_theta,
  discriminator D(x) = psi x, value f(psi theta) with f(t) = -log(1 + exp(-t)) for the GAN
  and f(t) = t for WGAN. The R1 penalty gamma/2 psi^2 makes the equilibrium attractive;
  clipping psi to [-c, c] and the WGAN-GP penalty lambda (|psi| - 1)^2 do not.

References:
    Mescheder, Geiger, Nowozin 2018, "Which Training Methods for GANs do actually Converge?"
    Daskalakis et al. 2018, "Training GANs with Optimism"; Korpelevich 1976 (extragradient).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from wganlab.experiments.base import check, pyplot, register, result, save_figure


def bilinear_field(x: float, y: float):
    """(d/dx, d/dy) of x y."""
    return y, x


def play_bilinear(method: str, steps: int, eta: float, start=(1.0, 1.0)) -> torch.Tensor:
    """Trajectory (steps + 1, 2) of min_x max_y xy under ``method``."""
    x, y = start  # plain floats: a scalar game runs a hundred times faster than with 0-d tensors
    path = [(x, y)]
    previous = bilinear_field(x, y)
    for _ in range(steps):
        gx, gy = bilinear_field(x, y)
        if method == "simultaneous":
            x, y = x - eta * gx, y + eta * gy
        elif method == "alternating":
            x = x - eta * gx
            y = y + eta * bilinear_field(x, y)[1]
        elif method == "extragradient":
            # a look-ahead step, then the real step with the look-ahead's gradient
            hx, hy = bilinear_field(x - eta * gx, y + eta * gy)
            x, y = x - eta * hx, y + eta * hy
        elif method == "optimistic":
            # x_{t+1} = x_t - 2 eta g_t + eta g_{t-1}
            x, y = x - 2 * eta * gx + eta * previous[0], y + 2 * eta * gy - eta * previous[1]
            previous = (gx, gy)
        else:
            raise ValueError(f"unknown method {method!r}")
        path.append((x, y))
    return torch.tensor(path, dtype=torch.float64)


def dirac_field(theta: float, psi: float, kind: str, gamma: float, gp_weight: float):
    """(generator's descent gradient in theta, discriminator's ascent gradient in psi)."""
    if kind == "wgan" or kind == "wgan-gp":
        slope = 1.0  # f(t) = t
    else:
        slope = 1.0 / (1.0 + math.exp(min(theta * psi, 700.0)))  # f'(t) = sigmoid(-t) for f(t) = -log(1 + exp(-t))
    g_theta = psi * slope
    g_psi = theta * slope
    if kind == "r1":
        g_psi = g_psi - gamma * psi  # d/dpsi of -gamma/2 ||grad_x D||^2 at the data, = -gamma/2 psi^2
    if kind == "wgan-gp":
        g_psi = g_psi - 2 * gp_weight * (abs(psi) - 1) * math.copysign(psi != 0, psi)  # grad_x D = psi everywhere
    return g_theta, g_psi


def play_dirac(kind: str, scheme: str, steps: int, h: float, gamma: float = 1.0, clip: float = 1.0,
               gp_weight: float = 1.0, start=(1.0, 1.0)) -> torch.Tensor:
    """Trajectory (steps + 1, 2) of (theta, psi) on the Dirac-GAN."""
    theta, psi = start
    path = [(theta, psi)]
    for _ in range(steps):
        g_theta, g_psi = dirac_field(theta, psi, kind, gamma, gp_weight)
        if scheme == "simultaneous":
            theta, psi = theta - h * g_theta, psi + h * g_psi
        else:  # alternating: the discriminator moves first, the generator answers the new psi
            psi = psi + h * g_psi
            if kind == "wgan":
                psi = min(max(psi, -clip), clip)
            theta = theta - h * dirac_field(theta, psi, kind, gamma, gp_weight)[0]
        if kind == "wgan":
            psi = min(max(psi, -clip), clip)  # the projection after the discriminator's step
        path.append((theta, psi))
    return torch.tensor(path, dtype=torch.float64)


BILINEAR_METHODS = ("simultaneous", "alternating", "extragradient", "optimistic")
DIRAC_KINDS = {"gan": "GAN, unregularised", "r1": "GAN + R1 (gamma 1)", "wgan": "WGAN, clip c = 1",
               "wgan-gp": "WGAN-GP (lambda 1)"}


@register("bilinear-game", "min_x max_y xy and the Dirac-GAN under simultaneous, alternating, "
                           "extragradient and optimistic steps", seconds=3)
def run(quick: bool, out: Path) -> dict:
    # The games cost microseconds a step: the quick version is the full one.
    eta, steps = 0.1, 1000
    paths = {m: play_bilinear(m, steps, eta) for m in BILINEAR_METHODS}
    norms = {m: torch.linalg.vector_norm(p, dim=1) for m, p in paths.items()}
    final = {m: float(n[-1]) for m, n in norms.items()}
    predicted_sim = math.sqrt(2) * (1 + eta**2) ** (steps / 2)

    h, dirac_steps = 0.2, 500
    dirac = {(k, s): play_dirac(k, s, dirac_steps, h) for k in DIRAC_KINDS for s in ("simultaneous", "alternating")}
    dnorm = {key: torch.linalg.vector_norm(p, dim=1) for key, p in dirac.items()}
    tail = slice(-100, None)  # the last 100 steps say whether a run settled
    dfig = {f"{k}/{s}": {"final_distance": float(n[-1]), "tail_min_distance": float(n[tail].min()),
                         "tail_max_distance": float(n[tail].max()),
                         "tail_max_abs_theta": float(dirac[(k, s)][tail, 0].abs().max())}
            for (k, s), n in dnorm.items()}

    checks = [
        check("bilinear simultaneous: final ||(x, y)||", final["simultaneous"],
              abs(final["simultaneous"] / predicted_sim - 1) < 1e-6, f"= sqrt(2) (1 + eta^2)^500 = {predicted_sim:.1f}"),
        check("bilinear alternating: max ||(x, y)|| over 1,000 steps", float(norms["alternating"].max()),
              float(norms["alternating"].max()) < 2.0 and final["alternating"] > 1.0, "bounded: < 2, and > 1 at the end"),
        check("bilinear extragradient: final ||(x, y)||", final["extragradient"], final["extragradient"] < 0.02, "< 0.02"),
        check("bilinear optimistic: final ||(x, y)||", final["optimistic"], final["optimistic"] < 0.02, "< 0.02"),
        check("Dirac-GAN simultaneous: final distance to (0, 0)", dfig["gan/simultaneous"]["final_distance"],
              dfig["gan/simultaneous"]["final_distance"] > 2 * math.sqrt(2), "diverges: > 2 x the start sqrt(2)"),
        check("Dirac-GAN alternating: distance over the last 100 steps (min)", dfig["gan/alternating"]["tail_min_distance"],
              0.5 < dfig["gan/alternating"]["tail_min_distance"] and dfig["gan/alternating"]["tail_max_distance"] < 5,
              "oscillates: stays in [0.5, 5], neither converging nor diverging"),
        check("Dirac-GAN + R1, simultaneous: final distance", dfig["r1/simultaneous"]["final_distance"],
              dfig["r1/simultaneous"]["final_distance"] < 1e-3, "converges: < 1e-3"),
        check("Dirac-GAN + R1, alternating: final distance", dfig["r1/alternating"]["final_distance"],
              dfig["r1/alternating"]["final_distance"] < 1e-3, "converges: < 1e-3"),
        *[check(f"{DIRAC_KINDS[kind]}, {scheme}: max |theta| over the last 100 steps",
                dfig[f"{kind}/{scheme}"]["tail_max_abs_theta"], dfig[f"{kind}/{scheme}"]["tail_max_abs_theta"] > 0.1,
                "the generator does not reach the data at 0 (Mescheder et al.): > 0.1")
          for kind in ("wgan", "wgan-gp") for scheme in ("simultaneous", "alternating")],
    ]

    plt = pyplot()
    plots = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for m, p in paths.items():
        axes[0].plot(p[:, 0], p[:, 1], lw=0.8, label=f"{m} (final {final[m]:.3g})")
        axes[1].semilogy(norms[m], label=m)
    axes[0].set_xlim(-3, 3)
    axes[0].set_ylim(-3, 3)
    axes[0].set_aspect("equal")
    axes[0].plot([1], [1], "ko")
    axes[0].set(title="min_x max_y xy from (1, 1), step 0.1 (zoomed to |.| < 3)", xlabel="x", ylabel="y")
    axes[0].legend(fontsize=8)
    axes[1].set(title="distance to the equilibrium", xlabel="step", ylabel="||(x, y)||")
    axes[1].legend()
    plots.append(save_figure(fig, out, "bilinear_trajectories.png"))

    fig, axes = plt.subplots(2, 4, figsize=(16, 8))
    for col, (kind, label) in enumerate(DIRAC_KINDS.items()):
        for row, scheme in enumerate(("simultaneous", "alternating")):
            ax = axes[row, col]
            p = dirac[(kind, scheme)]
            ax.plot(p[:, 0], p[:, 1], lw=0.7)
            ax.plot([1], [1], "ko")
            ax.plot([0], [0], "r*", ms=10)
            ax.set(title=f"{label}\n{scheme}: final dist {float(dnorm[(kind, scheme)][-1]):.2g}",
                   xlabel="theta (generator)", ylabel="psi (discriminator)")
            lim = max(2.0, min(6.0, float(p.abs().max()) * 1.05))
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
    plots.append(save_figure(fig, out, "dirac_gan_trajectories.png"))

    figures = {"bilinear": {"eta": eta, "steps": steps, "final_norm": final, "predicted_simultaneous": predicted_sim,
                            "alternating_max_norm": float(norms["alternating"].max())},
               "dirac_gan": {"h": h, "steps": dirac_steps, "r1_gamma": 1.0, "clip": 1.0, "gp_weight": 1.0, **dfig}}
    claim = ("Simultaneous gradient steps spiral out of the saddle of xy (by sqrt(1 + eta^2) a step), alternating "
             "steps circle, extragradient and optimistic steps converge; on the Dirac-GAN simultaneous steps "
             "diverge, alternating ones oscillate, an R1 penalty converges, and neither weight clipping nor "
             "WGAN-GP's penalty makes it converge.")
    protocol = ("Mescheder et al. 2018, Section 2 and Figure 1 (the Dirac-GAN, unregularised, R1, WGAN clipping, "
                "WGAN-GP, simultaneous and alternating steps); the bilinear game min_x max_y xy from (1, 1) with "
                "step 0.1 under simultaneous, alternating, extragradient (Korpelevich 1976) and optimistic "
                "(Daskalakis et al. 2018) updates.")
    scaled = "nothing: closed-form two-parameter games, run for their published horizons"
    return result(claim, checks, figures, plots, protocol=protocol, scaled=scaled)
