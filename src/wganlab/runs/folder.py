"""The run folder: everything a run leaves behind, written so that a kill loses nothing.

Layout::

    RUN/config.json          the resolved config
    RUN/metrics.jsonl        one JSON object per log or eval line, appended and flushed
    RUN/checkpoints/step-NNNNNNNN.pt  full training state, the last K kept (atomic: temp file,
                             fsync, rename; resume takes the newest that loads)
    RUN/generator.safetensors  weights of the reported generator (EMA when on)
    RUN/samples.npy          final samples, (N, D)
    RUN/summary.json         final metrics
    RUN/*.png, RUN/report.html
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from wganlab.runs.records import RunFolderError, is_record, read_bytes, read_json  # noqa: F401 (re-exported)
from wganlab.util.files import atomic_write_bytes, atomic_write_text

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
GENERATOR = "generator.safetensors"
SAMPLES = "samples.npy"
SUMMARY = "summary.json"


# every name a run writes at the top of its folder: --overwrite moves only these (a test keeps the
# list in step with what real toy and image runs write)
RUN_NAMES = (CONFIG, METRICS, CHECKPOINTS, GENERATOR, SAMPLES, SUMMARY, "report.html", "samples.png", "curves.png",
             "critic_surface.npz", "samples_grid.png", "class_histogram.png", "image_metrics.png", "grids",
             "events.out.tfevents.*", ".*.tmp")
ASIDE = ".wganlab-replaced"  # the old run's files while its replacement starts


def is_run_name(name: str) -> bool:
    """Whether a top-level entry of a run folder is one a run writes."""
    return name.startswith(ASIDE) or any(fnmatch.fnmatchcase(name, pattern) for pattern in RUN_NAMES)


def _is_wganlab_config(file: Path) -> bool:
    try:
        config = json.loads(file.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"objective", "constraint", "preset", "data"} <= set(config)


def protected_folder(path: Path) -> str | None:
    """Why ``path`` may never be replaced (the current folder, one above it, home, the root), or None."""
    path, cwd = path.resolve(), Path.cwd().resolve()
    if path == cwd:
        return "it is the current folder"
    if path in cwd.parents:
        return "it holds the current folder"
    home = Path.home().resolve()
    if path == home or path in home.parents:
        return "it is the home folder" if path == home else "it holds the home folder"
    return None


def next_run_dir(root: str | Path, name: str) -> Path:
    """``root/NNNNN-name``, numbered one past the highest existing run."""
    root = Path(root)
    numbers = [int(p.name[:5]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if root.is_dir() else []
    return root / f"{max(numbers, default=-1) + 1:05d}-{name}"


class RunFolder:
    """A run's folder on disk.

    Args:
        path: the folder.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.log_metrics = True  # False under --logger tensorboard: no metrics.jsonl
        self._aside: Path | None = None  # an old run's files while this one replaces it
        self._before: set[str] = set()  # the names a resumed run found

    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False) -> "RunFolder":
        """Makes a fresh folder; refuses one that already holds files unless ``overwrite``.

        ``overwrite`` replaces only a wganlab run folder (one with a wganlab ``config.json``), never
        the current folder, one above it or the home folder. The old run's files are moved aside
        (into ``.wganlab-replaced/``) and deleted once the new run's config is written; files the
        run did not write stay where they are.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"--out {path} is a file, not a folder; choose another --out")
        aside = None
        if path.is_dir() and any(path.iterdir()):
            is_run = _is_wganlab_config(path / CONFIG)
            has_checkpoint = bool(cls(path).checkpoint_files())
            if not overwrite:
                if is_run and has_checkpoint:
                    raise RunFolderError(f"--out {path} already holds a run; pass --resume {path} to continue it, "
                                         f"--overwrite to replace it, or choose another --out")
                if is_run:
                    raise RunFolderError(f"--out {path} holds a run that stopped before its first checkpoint "
                                         f"(nothing to resume); pass --overwrite to replace it, or choose another --out")
                raise RunFolderError(f"--out {path} is a folder that already holds files and is not a wganlab run; "
                                     f"choose an empty or new --out")
            reason = protected_folder(path)
            if reason:
                raise RunFolderError(f"--overwrite refuses {path}: {reason}; choose a run folder of its own as --out")
            if not is_run:
                raise RunFolderError(f"--overwrite replaces only a wganlab run folder, and {path} is not one "
                                     f"(it has no wganlab {CONFIG}); choose another --out")
            aside = cls(path)._move_run_aside()
        path.mkdir(parents=True, exist_ok=True)
        folder = cls(path)
        folder._aside = aside
        return folder

    def _move_run_aside(self) -> Path:
        """Moves the files a run wrote into a hidden folder (renames: no copy, no space needed)."""
        aside = self.path / ASIDE
        if aside.exists():  # left by a replacement that was killed: the older run's files
            shutil.rmtree(aside)
        aside.mkdir()
        for entry in self.path.iterdir():
            if entry.name != ASIDE and is_run_name(entry.name):
                os.replace(entry, aside / entry.name)
        return aside

    def _restore_aside(self) -> None:
        aside = self._aside
        if aside is None or not aside.is_dir():
            return
        for entry in aside.iterdir():
            os.replace(entry, self.path / entry.name)
        aside.rmdir()
        self._aside = None

    def remove_own_files(self, created: bool) -> None:
        """Takes away what a run that cannot be resumed wrote (and the folder, if it made it and it is
        empty then); the old run it was replacing comes back."""
        for entry in self.path.iterdir():
            if entry.name != ASIDE and is_run_name(entry.name):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
        self._restore_aside()
        if created and not any(self.path.iterdir()):
            self.path.rmdir()

    def write_config(self, config) -> None:
        try:
            atomic_write_text(self.path / CONFIG, config.to_json() + "\n")
        except BaseException:
            self._restore_aside()
            raise

    def commit(self) -> None:
        """Deletes the old files moved aside: the new run has proved valid (its config, or for a
        resumed run its first checkpoint, is on disk)."""
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None

    def restart_at(self, step: int, config) -> list[dict]:
        """Prepares a resumed run: the log cut back to ``step`` and the new config. The old two files
        stay aside until the resumed run's first checkpoint, so a resume that fails before it
        (:meth:`undo_restart`) leaves every file as it was."""
        records = [r for r in self.read_metrics() if r["step"] <= step]
        aside = self.path / ASIDE
        if aside.exists():  # from a resume killed before its first checkpoint
            shutil.rmtree(aside)
        self._before = {entry.name for entry in self.path.iterdir()}
        aside.mkdir()
        self._aside = aside
        try:
            for name in (CONFIG, METRICS):
                if (self.path / name).exists():
                    os.replace(self.path / name, aside / name)
            atomic_write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in records))
            self.write_config(config)
        except BaseException:
            self.undo_restart()
            raise
        return records

    def undo_restart(self) -> None:
        """Puts a run back as it was before :meth:`restart_at` (unless a new checkpoint was saved)."""
        if self._aside is None:
            return
        for entry in self.path.iterdir():
            if entry.name not in self._before and entry.name != ASIDE and is_run_name(entry.name):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
        for name in (CONFIG, METRICS):
            if not (self._aside / name).exists():
                (self.path / name).unlink(missing_ok=True)
        self._restore_aside()

    def read_config(self):
        from wganlab.config import ConfigError, from_dict

        file = self.path / CONFIG
        if not file.is_file():
            raise RunFolderError(f"{self.path} is not a wganlab run folder: it has no {CONFIG}")
        config = read_json(file, "the run's config")
        if not isinstance(config, dict):
            raise RunFolderError(f"{file} is damaged: it holds a JSON {type(config).__name__}, not the run's config")
        try:
            return from_dict(config)
        except (ConfigError, TypeError, ValueError, AttributeError) as error:
            raise RunFolderError(f"{file} is damaged or from another version: {error}") from None

    def append_metrics(self, record: dict) -> None:
        if not self.log_metrics:
            return
        with open(self.path / METRICS, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        """The log's records. Lines that are not a record (a line cut short by a kill, damage) are
        skipped with one warning on stderr; a log with no readable record at all is refused."""
        file = self.path / METRICS
        if not file.is_file():
            return []
        data = read_bytes(file, "the run's metrics log")
        records, bad = [], []
        for number, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                bad.append(number)
                continue
            if is_record(record):
                records.append(record)
            else:
                bad.append(number)
        if bad and not records:
            raise RunFolderError(f"{file} holds no readable metrics record ({len(bad)} damaged line(s)); "
                                 f"it is not a wganlab log or it is damaged throughout")
        if bad:
            print(f"wganlab: skipped {len(bad)} unreadable line(s) of {file} (line {bad[0]}"
                  f"{' and others' if len(bad) > 1 else ''}); the other {len(records)} records are used",
                  file=sys.stderr)
        return records

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint_files(self) -> list[Path]:
        """The run's checkpoints, newest (highest step) first."""
        folder = self.path / CHECKPOINTS
        if not folder.is_dir():
            return []
        return sorted(folder.glob("step-[0-9]*.pt"), key=lambda p: int(p.stem[5:]), reverse=True)

    def save_checkpoint(self, state: dict, generator_weights: dict, keep: int = 3,
                        data_shape: tuple[int, ...] | None = None) -> Path:
        """Writes ``state`` as ``checkpoints/step-N.pt`` and the reported generator's weights.

        The new file is complete on disk before any older one is removed, so a kill at any
        point leaves at least one readable checkpoint.
        """
        from safetensors.torch import save as save_safetensors

        folder = self.path / CHECKPOINTS
        folder.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        target = folder / f"step-{state['step']:08d}.pt"
        atomic_write_bytes(target, buffer.getvalue())
        weights = {k: v.detach().cpu().contiguous() for k, v in generator_weights.items()}
        metadata = {"format": "pt"}
        if data_shape is not None:  # so that sampling needs only the run folder, not the training data
            metadata["data_shape"] = json.dumps([int(n) for n in data_shape])
        atomic_write_bytes(self.path / GENERATOR, save_safetensors(weights, metadata=metadata))
        for old in self.checkpoint_files()[max(keep, 1):]:
            old.unlink(missing_ok=True)
        for stale in folder.glob(".*.tmp"):  # left by a write that a kill cut short
            stale.unlink(missing_ok=True)
        self.commit()
        return target

    def load_latest_checkpoint(self) -> tuple[Path, dict, list[str]]:
        """The newest checkpoint that loads, with the reasons older-than-newest were skipped.

        Returns:
            (file, state, skipped) where ``skipped`` says why each newer file was passed over.
        """
        skipped = []
        for file in self.checkpoint_files():
            try:
                # weights_only: a checkpoint is data, never code to run
                state = torch.load(file, map_location="cpu", weights_only=True)
                if not isinstance(state, dict) or "step" not in state or "generator" not in state:
                    raise ValueError("it is not a wganlab checkpoint")
                return file, state, skipped
            except Exception as error:  # torch raises many types for a truncated or foreign file
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                skipped.append(f"{file.name}: {first[:200]}")
        if skipped:
            raise RunFolderError(f"no readable checkpoint in {self.path / CHECKPOINTS} ({'; '.join(skipped)}); "
                                 f"start a new run with --overwrite")
        raise RunFolderError(f"{self.path} has no checkpoint to resume from; start a new run with --overwrite")

    def generator_data_shape(self) -> tuple[int, ...] | None:
        """The per-sample shape the saved generator draws; None when there are no weights yet, they are
        damaged, or they were saved before the shape was recorded."""
        from safetensors import safe_open

        try:
            with safe_open(str(self.path / GENERATOR), framework="pt") as handle:
                shape = json.loads((handle.metadata() or {}).get("data_shape", "null"))
        except Exception:  # a damaged file: load_generator_weights names it
            return None
        if isinstance(shape, list) and shape and all(type(n) is int and n > 0 for n in shape):
            return tuple(shape)
        return None

    def load_generator_weights(self) -> dict:
        from safetensors.torch import load_file

        file = self.path / GENERATOR
        if not file.is_file():
            raise RunFolderError(f"{self.path} has no {GENERATOR}: the run saved no checkpoint yet")
        try:
            return load_file(file)
        except Exception as error:  # safetensors raises its own error types for damaged headers
            raise RunFolderError(f"{file} is damaged ({error}); re-run training or use another run") from None

    def write_samples(self, samples: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, samples)
        atomic_write_bytes(self.path / SAMPLES, buffer.getvalue())

    def write_arrays(self, name: str, **arrays: np.ndarray) -> None:
        """Writes ``name`` as an ``.npz`` of the given arrays, atomically."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(self.path / name, buffer.getvalue())

    def write_summary(self, summary: dict) -> None:
        atomic_write_text(self.path / SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict:
        file = self.path / SUMMARY
        if not file.is_file():
            return {}
        summary = read_json(file, "the run's summary")
        if not isinstance(summary, dict):
            raise RunFolderError(f"{file} is damaged: it holds a JSON {type(summary).__name__}, not a summary")
        return summary
