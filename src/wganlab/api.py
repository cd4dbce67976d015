"""The Python API, and the entry points behind the command line.

    import numpy as np, wganlab
    run = wganlab.train(data=np.load("points.npy"), steps=2000)   # (N, D) array -> Run
    run.metrics["w1"]                                              # final figures
    fake = run.sample(1000)                                        # (1000, D) numpy array
    wganlab.evaluate(fake, "ring8")                                # the same metrics for any samples
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from wganlab.config import TrainConfig, resolve
from wganlab.metrics.headline import headline_of
from wganlab.report.run import CRITIC_SURFACE, SamplesAhead, write_report
from wganlab.runs.folder import RunFolder, RunFolderError


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
    return _train_into_folder(config, out, overwrite, progress, callbacks, resume)[0]


def _train_into_folder(config: TrainConfig, out: str | Path, overwrite: bool, progress: bool, callbacks,
                       resume: bool = False):
    from wganlab.training.loop import Trainer

    trainer = Trainer(config, progress=progress, callbacks=callbacks)
    if config.logger in ("tensorboard", "both"):
        from wganlab.observe.tensorboard import require_tensorboard

        require_tensorboard()
    if resume:
        run = RunFolder(out)
        checkpoint, state, skipped = run.load_latest_checkpoint()
        trained_on = run.generator_data_shape()
        if trained_on is not None and trained_on != tuple(trainer.dataset.shape):
            raise RunFolderError(f"the data {config.data} has changed since the run was trained: samples of shape "
                                 f"{trained_on} then, {tuple(trainer.dataset.shape)} now; put the run's data back, "
                                 f"or start a new run")
        trainer.load_state_dict(state)
        planned = run.read_config().steps
        if config.steps > planned:
            config.extended_from = planned
            if trainer.rank == 0:
                print(extension_line(planned, config, trainer.step), file=sys.stderr)
        for reason in skipped:
            print(f"wganlab: skipped an unreadable checkpoint, {reason}", file=sys.stderr)
        if trainer.rank == 0:  # both files change together or neither does
            trainer.history = run.restart_at(trainer.step, config)
        created = False
    else:
        created = not Path(out).exists()
        run = RunFolder.create(out, overwrite=overwrite) if trainer.rank == 0 else RunFolder(out)
    try:
        if not resume and trainer.rank == 0:
            run.write_config(config)
            run.commit()  # the new run is valid: the old one moved aside by --overwrite goes
        summary = _train_and_finish(trainer, run, config)
        if trainer.rank == 0:
            run.commit()
    except BaseException as error:
        from wganlab.training.loop import NonFiniteError

        # a fresh run that cannot be resumed (no checkpoint yet) is taken away rather than left as
        # a shell that blocks the same command; one that diverged keeps its log for the doctor
        if (not resume and trainer.rank == 0 and not isinstance(error, NonFiniteError)
                and not run.checkpoint_files()):
            run.remove_own_files(created=created)
        if resume and trainer.rank == 0:
            run.undo_restart()  # a resume that fails before its first checkpoint changes no file
        if isinstance(error, OSError) and not error.filename:  # a library's write: name the folder at least
            raise OSError(error.errno, error.strerror or str(error), f"the run folder {run.path}") from None
        raise
    return summary, trainer


def _train_and_finish(trainer, run: RunFolder, config: TrainConfig) -> dict:
    trainer.run = run
    run.log_metrics = config.logger in ("jsonl", "both")
    if trainer.dataset.kind == "image" and trainer.rank == 0:
        from wganlab.observe.grids import GRIDS, SampleGrids

        trainer.callbacks.append(SampleGrids(run.path / GRIDS))
    ahead = SamplesAhead(run.path) if trainer.dataset.dim == 2 and trainer.rank == 0 else None
    if ahead is not None:
        trainer.callbacks.append(ahead)
    board = None
    if config.logger in ("tensorboard", "both") and trainer.rank == 0:
        from wganlab.observe.tensorboard import TensorBoardLogger

        board = TensorBoardLogger(run.path)
        trainer.callbacks.append(board)
    try:
        with _stop_on_signals(trainer):
            summary = trainer.train()
        if trainer.rank != 0:
            return summary
        summary["interrupted"] = trainer.interrupted
        # the final evaluation's samples, surface and picture where SamplesAhead took them, else now
        taken = ahead.take(trainer) if ahead is not None else None
        samples, surface, picture = taken or (None, None, None)
        if samples is None:
            samples = trainer.sample(config.eval_samples, seed=config.seed).numpy()
        run.write_samples(samples)
        if trainer.dataset.dim == 2:
            xs, ys, values = surface or trainer.critic_surface()
            run.write_arrays(CRITIC_SURFACE, xs=xs, ys=ys, values=values)
        run.write_summary(summary)
        write_report(run.path, samples_ahead=picture)
        return summary
    finally:
        if board is not None:
            board.close()  # also when training fails: the events so far stay readable
        if ahead is not None:
            ahead.discard()  # a picture drawn ahead and not used (the run failed) leaves no file


def extension_line(planned: int, config: TrainConfig, step: int) -> str:
    """What a --resume to more steps does to the plan: the learning-rate decay is re-planned over
    the new total (as a run planned that long from the start would have it), said in numbers."""
    from wganlab.core.schedules import decay_start, linear_decay

    head = f"wganlab: extending the run from {planned} to {config.steps} steps"
    if config.lr_decay_fraction == 0:
        return f"{head}; nothing in its plan depends on the total (lr_decay_fraction 0)"
    old, new = linear_decay(planned, config.lr_decay_fraction), linear_decay(config.steps, config.lr_decay_fraction)
    decay_from = decay_start(config.steps, config.lr_decay_fraction)
    old_from = decay_start(planned, config.lr_decay_fraction)
    past = (f"; unlike that run, this one already decayed over steps {old_from}-{step} of the old plan" if step > old_from
            else "; up to here its rates are that run's")
    return (f"{head}: the learning-rate decay (the final {config.lr_decay_fraction:.0%}) is re-planned over "
            f"{config.steps} steps, so the rate goes from {old(step):.3g}x the base at step {step} (the old plan's) "
            f"to {new(step):.3g}x, decaying to 0 from step {decay_from} as in a run planned for {config.steps} "
            f"steps{past}")


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
    """The saved generator of a run as ``sample(n, seed=0) -> (n, *shape) numpy array``."""
    from wganlab.data import data_shape
    from wganlab.training.loop import build_generator

    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise RunFolderError(f"run folder {run.path} does not exist")
    config = run.read_config()
    shape = run.generator_data_shape() or data_shape(config)  # recorded, else read from the data
    generator = build_generator(config, shape)
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
        if n <= 10_000:
            return generator(z).numpy()
        return torch.cat([generator(chunk) for chunk in z.split(10_000)]).numpy()  # bounded activations

    import math

    sample.floats_per_sample = math.prod(shape) + config.latent_dim
    return sample


def load_critic(run_dir: str | Path) -> torch.nn.Module:
    """The critic of a run's newest checkpoint, in eval mode (it is trained against the raw
    generator; ``refine_samples`` recalibrates it for the reported one)."""
    from wganlab.data import data_shape
    from wganlab.training.build import build_critic

    run = RunFolder(run_dir)
    config = run.read_config()
    file, state, _ = run.load_latest_checkpoint()
    critic = build_critic(config, run.generator_data_shape() or data_shape(config))
    try:
        critic.load_state_dict(state["critic"])
    except (KeyError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0]
        raise RunFolderError(f"{file} holds no critic that fits the run's config.json ({first})") from None
    return critic.eval()


def refine_samples(run_dir: str | Path, n: int, seed: int = 0, gamma: float = 0.0,
                   calibration: int = 2500) -> tuple[np.ndarray, dict]:
    """``n`` samples of a run folder's generator kept by discriminator rejection sampling on its
    critic, and the sampler's statistics (see :func:`refine`)."""
    from wganlab.data import make_dataset

    config = RunFolder(run_dir).read_config()
    return refine(load_generator(run_dir), load_critic(run_dir), make_dataset(config), n, seed, gamma, calibration)


def refine(sampler, critic, dataset, n: int, seed: int = 0, gamma: float = 0.0,
           calibration: int = 2500) -> tuple[np.ndarray, dict]:
    """Discriminator rejection sampling (``wganlab.core.refinement``, Azadi et al. 2019) of
    ``sampler(count, seed=...) -> numpy samples`` on ``critic``: its scores Platt-calibrated on
    ``calibration`` real samples of ``dataset`` and as many generated. The generator is
    untouched; these are refined samples, to be reported as such beside the plain ones."""
    from wganlab.core.packing import score_points
    from wganlab.core.refinement import platt_scaling, rejection_sample

    real = dataset.sample(calibration, generator=torch.Generator().manual_seed(seed + 1)).float()
    fake = torch.from_numpy(np.asarray(sampler(calibration, seed=seed + 1_000_000)))
    device = next(critic.parameters()).device
    with torch.no_grad():
        def scores(x):
            return score_points(critic, x.to(device)).reshape(-1).double().cpu()

        a, b = platt_scaling(scores(real), scores(fake))

        def draw(count: int, draw_seed: int):
            samples = torch.from_numpy(np.asarray(sampler(count, seed=draw_seed)))
            return samples, a * scores(samples) + b

        samples, stats = rejection_sample(draw, n, seed=seed + 2_000_000, gamma=gamma)
    return samples.numpy(), {"method": "drs", "calibration": {"a": a, "b": b}, "gamma": gamma, **stats}


# -- the public Python API -----------------------------------------------------------------------
class Run:
    """A trained GAN: its config, final metrics, training records and a sampler.

    Attributes:
        config: the resolved :class:`~wganlab.config.TrainConfig`.
        metrics: the final figures (``w1``, ``w_estimate``, ``steps``, ``wall_seconds``, and on
            a Gaussian mixture ``modes_captured``, ``high_quality_fraction``, ``reverse_kl``).
        history: every train and eval record, as written to ``metrics.jsonl``.
        path: the run folder, or None when the run wrote no files.
        trainer: the :class:`~wganlab.trainer.Trainer` (nets, optimisers), or None for a loaded run.
    """

    def __init__(self, config: TrainConfig, metrics: dict, history: list[dict], sampler,
                 path: Path | None = None, trainer=None):
        self.config = config
        self.metrics = metrics
        self.history = history
        self.path = path
        self.trainer = trainer
        self._sampler = sampler

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """(n, D) float32 samples of the reported generator (the EMA copy when on), seeded."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return np.asarray(self._sampler(n, seed))

    @classmethod
    def load(cls, run_dir: str | Path) -> "Run":
        """A finished run folder as a :class:`Run` (config, metrics, history, sampler)."""
        sampler = load_generator(run_dir)
        run = RunFolder(run_dir)
        return cls(run.read_config(), run.read_summary(), run.read_metrics(), sampler, path=run.path)

    def __repr__(self) -> str:
        shown = headline_of(self.metrics, ("modes_captured", "high_quality_fraction", "w1", "fid"))
        return f"Run({self.config.preset} on {self.metrics.get('data', self.config.data)}, {shown})"


def _as_dataset(data):
    """None, a built-in name, an (N, D) array/tensor, or a dataset object -> (dataset or None, name)."""
    from wganlab.data.array import ArrayDataset

    if data is None or isinstance(data, str):
        return None, data
    if hasattr(data, "sample") and hasattr(data, "dim"):
        return data, getattr(data, "name", type(data).__name__)
    dataset = ArrayDataset(data)
    return dataset, f"array{tuple(dataset.points.shape)}"


def train(config: TrainConfig | str | Path | None = None, *, preset: str | None = None, data=None,
          out: str | Path | None = None, overwrite: bool = False, progress: bool = False, callbacks=(),
          **overrides) -> Run:
    """Trains a GAN and returns the :class:`Run`.

    Args:
        config: a :class:`TrainConfig`, a TOML file path, or None for the defaults.
        preset: a preset name (``wganlab presets`` lists them); overrides the config's preset.
        data: a built-in distribution name (``"ring8"``), an (N, D) NumPy array or tensor of
            your own points, or any object with ``dim`` and ``sample(n, generator) -> (n, D)
            tensor``. None keeps the config's ``data``.
        out: a run folder to write (config, metrics, checkpoint, report); None writes nothing.
            Only built-in data can be written to a run folder for now, because a run folder
            must rebuild its data from ``config.json``.
        overwrite: replace an existing run folder at ``out``.
        progress: show a progress bar.
        callbacks: Trainer callbacks (objects with ``on_record`` / ``on_end``).
        **overrides: any config key, e.g. ``steps=2000, gp_weight=1.0``; unknown keys and
            wrong types raise :class:`~wganlab.config.ConfigError` naming the valid keys.

    Returns:
        a :class:`Run`: ``run.metrics``, ``run.sample(n) -> (n, D)``, ``run.history``.
    """
    from wganlab.training.loop import Trainer

    dataset, data_name = _as_dataset(data)
    if dataset is None and data_name is not None:
        overrides = {**overrides, "data": data_name}
    if isinstance(config, TrainConfig):
        values = {**config.to_dict(), **overrides}
        if preset is not None:
            values.pop("preset")
        config = resolve(preset or config.preset, values)
    else:
        config = resolve(preset, overrides, config)
    if out is not None:
        if dataset is not None:
            raise ValueError("out= needs built-in data (a run folder rebuilds its data from config.json); "
                             "train an in-memory array with out=None")
        summary, trainer = _train_into_folder(config, out, overwrite, progress, callbacks)
        path = Path(out)
    else:
        trainer = Trainer(config, progress=progress, callbacks=callbacks, dataset=dataset)
        summary = trainer.train()
        path = None
    if dataset is not None:
        summary["data"] = data_name

    def sample(n: int, seed: int) -> np.ndarray:
        return trainer.sample(n, seed=seed).numpy()

    return Run(config, summary, trainer.history, sample, path=path, trainer=trainer)


def evaluate(samples, data, *, n_real: int = 2000, seed: int = 0) -> dict:
    """Scores generated samples against data.

    Args:
        samples: (N, D) array or tensor of generated points.
        data: a built-in name (``"ring8"``, ``"grid25"``, ``"swissroll"``), an (M, D) array of
            real points, or a dataset object with ``dim``, ``sample(n, generator)`` and
            optionally ``means``/``sigma``/``n_modes`` (Gaussian mixtures).
        n_real: real samples in the exact W1 (drawn with ``seed``; from an array, with
            replacement), compared with the first ``n_real`` of ``samples``.

    Returns:
        ``w1`` (exact Wasserstein-1, optimal transport), ``n_samples``, ``w1_samples``, and
        on a Gaussian mixture ``modes_captured``, ``n_modes``, ``high_quality_fraction``,
        ``reverse_kl``, ``mode_counts``.
    """
    from wganlab.data.toy import make_toy
    from wganlab.metrics.toy import evaluate_toy

    if isinstance(data, str):
        dataset = make_toy(data)
    else:
        dataset, _ = _as_dataset(data)
    return evaluate_toy(samples, dataset, n_real=n_real, seed=seed)
