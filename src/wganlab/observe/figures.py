"""TensorBoard's two 2D pictures as RGB arrays, drawn with numpy and matplotlib only (no torch),
so that the ``figures`` side process (``wganlab.util.sidecar``) can draw them while training goes
on. The arrays are what ``SummaryWriter.add_figure`` would log: the canvas, alpha dropped."""

from __future__ import annotations

import numpy as np

from wganlab.util.plotting import TITLE_Y, pyplot


def _pixels(fig) -> np.ndarray:
    plt = pyplot()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def samples_picture(real: np.ndarray, fake: np.ndarray, step: int) -> np.ndarray:
    """(H, W, 3) uint8: generated samples over the real ones."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(real[:, 0], real[:, 1], s=3, c="black", alpha=0.35, linewidths=0, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:orange", alpha=0.6, linewidths=0, label="generated")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", markerscale=3)
    ax.set_title(f"samples at step {step}", y=TITLE_Y)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.93)  # speed: no tight_layout pass
    return _pixels(fig)


def critic_picture(xs: np.ndarray, ys: np.ndarray, values: np.ndarray, fake: np.ndarray, step: int) -> np.ndarray:
    """(H, W, 3) uint8: the critic's value as filled contours, generated samples on top."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    fig.subplots_adjust(left=0.11, right=0.93, bottom=0.08, top=0.93)  # speed: no tight_layout pass
    contour = ax.contourf(xs, ys, values, levels=30, cmap="RdBu_r")
    fig.colorbar(contour, ax=ax, label="critic value f(x)")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="black", alpha=0.4, linewidths=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"critic at step {step}", y=TITLE_Y)
    return _pixels(fig)
