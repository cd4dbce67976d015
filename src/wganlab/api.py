"""The Python entry points behind the command line."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from wganlab.config import TrainConfig
from wganlab.report import CRITIC_SURFACE, write_report
from wganlab.runfolder import RunFolder, RunFolderError


def train_run(config: TrainConfig, out: str | Path, overwrite: bool = False, progress: bool = False,
              callbacks=(), resume: bool = False) -> dict:
    """Trains ``config`` into the run folder ``out`` and returns the final summary.

    Everything that can be refused (config, device, an occupied folder, an unreadable
    checkpoint) is checked before the folder is touched. With ``resume``, ``out`` is an
    existing run whose newest readable checkpoint is restored exactly (weights, optimisers,
    RNG streams, step, EMA, schedules, log) and training goes on to ``config.steps``.

    SIGINT and SIGTERM finish the step in flight, checkpoint, flush the log and return a
    summary with ``interrupted: True``.
    """
    from wganlab.trainer import Trainer

    trainer = Trainer(config, progress=progress, callbacks=callbacks)
    if resume:
        run = RunFolder(out)
        checkpoint, state, skipped = run.load_latest_checkpoint()
        trainer.load_state_dict(state)
        for reason in skipped:
            print(f"wganlab: skipped an unreadable checkpoint, {reason}", file=sys.stderr)
        if trainer.rank == 0:
            trainer.history = run.truncate_metrics(trainer.step)
            run.write_config(config)
    else:
        run = RunFolder.create(out, overwrite=overwrite) if trainer.rank == 0 else RunFolder(out)
        if trainer.rank == 0:
            run.write_config(config)
    trainer.run = run
    with _stop_on_signals(trainer):
        summary = trainer.train()
    if trainer.rank != 0:
        return summary
    summary["interrupted"] = trainer.interrupted
    run.write_samples(trainer.sample(config.eval_samples, seed=config.seed).numpy())
    if trainer.dataset.dim == 2:
        xs, ys, values = trainer.critic_surface()
        run.write_arrays(CRITIC_SURFACE, xs=xs, ys=ys, values=values)
    run.write_summary(summary)
    write_report(run.path)
    return summary


@contextmanager
def _stop_on_signals(trainer):
    """SIGINT/SIGTERM ask the trainer to stop after the step in flight (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum, frame):
        if trainer.stop_requested:  # a second signal: stop now
            raise KeyboardInterrupt
        trainer.stop_requested = True
        if trainer.rank == 0:
            print(f"\nwganlab: {signal.Signals(signum).name} received; finishing step {trainer.step + 1}, "
                  f"then saving a checkpoint (send it again to stop at once)", file=sys.stderr)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def load_generator(run_dir: str | Path):
    """The saved generator of a run as ``sample(n, seed=0) -> (n, D) numpy array``."""
    from wganlab.data.toy import make_toy
    from wganlab.trainer import build_generator

    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise RunFolderError(f"run folder {run.path} does not exist")
    config = run.read_config()
    dataset = make_toy(config.data, radius=config.radius, sigma=config.sigma, spacing=config.spacing)
    generator = build_generator(config, dataset.dim)
    try:
        generator.load_state_dict(run.load_generator_weights())
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise RunFolderError(f"{run.path / 'generator.safetensors'} does not fit the run's config.json "
                             f"({first}); the files come from different runs") from None
    generator.eval()

    @torch.no_grad()
    def sample(n: int, seed: int = 0) -> np.ndarray:
        z = torch.randn(n, config.latent_dim, generator=torch.Generator().manual_seed(seed))
        return generator(z).numpy()

    return sample
