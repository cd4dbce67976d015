"""TensorBoard event files in the run folder, written by a Trainer callback.

``tensorboard --logdir runs`` then shows every run folder as one run:

* scalars: every train line (``train/d_loss``, ``train/w_estimate``, ...) and every
  evaluation (``eval/w1``, ``eval/modes_captured``, ...), against the generator step;
* images, at each evaluation: generated samples over the real data (2D data), or a grid
  of generated images (data with an ``image_shape``), and the critic's value as contours;
* histograms, at each evaluation: the weights and the weight gradients of every layer of
  both nets, and the per-sample input-gradient norms ||grad_x f(x)|| of the critic at real
  and at generated points (the quantity a gradient penalty pushes towards 1).

Images and histograms cost a few hundred milliseconds, so they are drawn at evaluations
only; scalars cost nothing measurable (they are the numbers the trainer already read).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from wganlab.core.constraints import critic_input_gradient_norms
from wganlab.core.packing import whole_packs
from wganlab.observe.detectors import Finding
from wganlab.observe.grids import grid_array
from wganlab.util import sidecar
from wganlab.util.interrupt import held_interrupt

GRADIENT_POINTS = 512  # points at which the critic's input-gradient norms are histogrammed
# 64 equal buckets: TensorBoard shows ~30 anyway, and torch's default (~1,500 "tensorflow" edges) costs
# twice the time (0.19 s against 0.09 s for the 32 histograms of two 3x512 nets)
BINS = 64


# tensorboard's file layer imports boto3 and fsspec when they are installed, for s3:// and other
# remote log folders; a run folder is a local path, and the two cost ~0.07 s of a one-step run
_REMOTE_FILESYSTEMS = ("boto3", "fsspec")


def require_tensorboard():
    """The SummaryWriter class, or a one-line error naming the fix (checked before a run folder is made).

    Imported with boto3 and fsspec hidden (``sys.modules[name] = None`` makes their import fail,
    which tensorboard reads as "no remote file systems"), then put back as they were, so a user's
    own ``import boto3`` later works.
    """
    hidden = [name for name in _REMOTE_FILESYSTEMS if name not in sys.modules]
    try:
        with held_interrupt():
            for name in hidden:
                sys.modules[name] = None
            try:
                from torch.utils.tensorboard import SummaryWriter
            finally:
                for name in hidden:
                    if sys.modules.get(name, 0) is None:
                        del sys.modules[name]
    except ImportError:  # tensorboard is a dependency, but a trimmed environment may lack it
        raise ValueError("--logger tensorboard/both needs the tensorboard package; pip install tensorboard, "
                         "or use --logger jsonl") from None
    return SummaryWriter


class TensorBoardLogger:
    """Writes a run's statistics as TensorBoard events into ``log_dir`` (the run folder).

    Args:
        log_dir: folder for the ``events.out.tfevents.*`` file.
        images: draw sample and critic images at evaluations.
        histograms: write weight, gradient and input-gradient-norm histograms at evaluations.
    """

    def __init__(self, log_dir: str | Path, images: bool = True, histograms: bool = True):
        self.log_dir = Path(log_dir)
        self.writer = require_tensorboard()(log_dir=str(self.log_dir), flush_secs=10)
        self.closed = False
        self.images = images
        self.histograms = histograms
        self._drawing: list = []  # (tag, step, Future of an (H, W, 3) picture) not yet logged

    # -- Trainer callback ------------------------------------------------------------------
    def on_record(self, trainer, record: dict) -> None:
        kind, step = record["kind"], record["step"]
        if kind == "finding":  # the doctor's, emitted through the trainer: text, not scalars
            self.writer.add_text(f"doctor/{record['detector']}", Finding.from_record(record).text(), step)
            return
        for key, value in record.items():
            if key in ("kind", "step") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            self.writer.add_scalar(f"{kind}/{key}", value, step)
        self._log_drawn()

    def before_eval(self, trainer) -> None:
        """Pictures and histograms of the nets about to be evaluated, logged under the evaluation's
        step while its exact W1 is solved (the pictures drawn in the figures side process where it
        runs)."""
        if self.images:
            self._images(trainer, trainer.step)
        if self.histograms:
            self._histograms(trainer, trainer.step)

    def on_end(self, trainer, summary: dict) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            try:
                self._log_drawn(wait=True)
            finally:
                self.writer.close()  # flushes
            self.closed = True

    # -- pictures ------------------------------------------------------------------------------
    def _images(self, trainer, step: int) -> None:
        dataset = trainer.dataset
        image_shape = getattr(dataset, "image_shape", None)
        if image_shape is not None:
            samples = trainer.sample(64, seed=trainer.config.seed).numpy().reshape(-1, *image_shape)
            grid = grid_array(samples, padding=0, scale=1)  # as before the move: no gutters, 1x
            self.writer.add_image("samples/grid", grid, step, dataformats="HW" if grid.ndim == 2 else "HWC")
        if dataset.dim != 2:
            return
        real = trainer.held_real.cpu().numpy()
        fake = trainer.sample(1000, seed=trainer.config.seed).numpy()
        xs, ys, values = trainer.critic_surface()
        # drawn in the figures side process where it runs (logged when ready), else here
        self._drawing += [
            ("samples/scatter", step, sidecar.submit("figures", "wganlab.observe.figures:samples_picture",
                                                     real, fake, step)),
            ("critic/contours", step, sidecar.submit("figures", "wganlab.observe.figures:critic_picture",
                                                     xs, ys, values, fake, step))]

    def _log_drawn(self, wait: bool = False) -> None:
        """Logs the pictures drawn so far (all of them, waiting, with ``wait``)."""
        still = []
        for tag, step, picture in self._drawing:
            if wait or picture.done():
                try:
                    pixels = picture.result()
                except Exception as error:  # noqa: BLE001 - a picture (e.g. of NaN samples before a rollback) is not worth the run
                    print(f"wganlab: TensorBoard picture {tag} at step {step} not drawn: {error}", file=sys.stderr)
                    continue
                self.writer.add_image(tag, pixels, step, dataformats="HWC")
            else:
                still.append((tag, step, picture))
        self._drawing = still

    def _histograms(self, trainer, step: int) -> None:
        for net_name, net in (("generator", trainer.generator), ("critic", trainer.critic)):
            for name, param in net.named_parameters():
                self.writer.add_histogram(f"weights/{net_name}/{name}", param.detach().cpu(), step, bins=BINS)
                if param.grad is not None:
                    self.writer.add_histogram(f"gradients/{net_name}/{name}", param.grad.detach().cpu(), step,
                                              bins=BINS)
        real = trainer.held_real[:whole_packs(min(GRADIENT_POINTS, len(trainer.held_real)), trainer.config.pack)]
        fake = trainer.sample(len(real), seed=trainer.config.seed).to(real.device)
        for name, points in (("real", real), ("generated", fake)):
            x = points.detach().clone().requires_grad_(True)  # no parameter .grad changes
            with torch.enable_grad(), trainer.measured_critic() as critic:
                norms = critic_input_gradient_norms(critic, x, create_graph=False).detach().cpu()
            self.writer.add_histogram(f"critic_input_grad_norm/{name}", norms, step, bins=BINS)
