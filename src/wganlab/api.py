"""The Python entry points behind the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wganlab.config import TrainConfig
from wganlab.report import CRITIC_SURFACE, write_report
from wganlab.runfolder import RunFolder, RunFolderError


def train_run(config: TrainConfig, out: str | Path, overwrite: bool = False, progress: bool = False,
              callbacks=()) -> dict:
    """Trains ``config`` into the run folder ``out`` and returns the final summary.

    Everything that can be refused (config, device, an occupied folder) is checked before
    the folder is touched.
    """
    from wganlab.trainer import Trainer

    trainer = Trainer(config, progress=progress, callbacks=callbacks)
    run = RunFolder.create(out, overwrite=overwrite)
    trainer.run = run
    if trainer.dataset.kind == "image":
        from wganlab.image_report import GRIDS, SampleGrids

        trainer.callbacks.append(SampleGrids(run.path / GRIDS))
    run.write_config(config)
    summary = trainer.train()
    run.write_samples(trainer.sample(config.eval_samples, seed=config.seed).numpy())
    if trainer.dataset.dim == 2:
        xs, ys, values = trainer.critic_surface()
        run.write_arrays(CRITIC_SURFACE, xs=xs, ys=ys, values=values)
    run.write_summary(summary)
    write_report(run.path)
    return summary


def load_generator(run_dir: str | Path):
    """The saved generator of a run as ``sample(n, seed=0) -> (n, *shape) numpy array``."""
    from wganlab.data import data_shape
    from wganlab.trainer import build_generator

    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise RunFolderError(f"run folder {run.path} does not exist")
    config = run.read_config()
    generator = build_generator(config, data_shape(config))
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
