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

import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from wganlab.util.files import atomic_write_bytes, atomic_write_text

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
GENERATOR = "generator.safetensors"
SAMPLES = "samples.npy"
SUMMARY = "summary.json"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked."""


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

    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False) -> "RunFolder":
        """Makes a fresh folder; refuses one that already holds files unless ``overwrite``."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"--out {path} is a file, not a folder; choose another --out")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise RunFolderError(f"--out {path} already holds a run; pass --resume {path} to continue it, "
                                     f"--overwrite to replace it, or choose another --out")
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def write_config(self, config) -> None:
        atomic_write_text(self.path / CONFIG, config.to_json() + "\n")

    def read_config(self):
        from wganlab.config import ConfigError, from_dict

        file = self.path / CONFIG
        if not file.is_file():
            raise RunFolderError(f"{self.path} is not a wganlab run folder: it has no {CONFIG}")
        try:
            return from_dict(json.loads(file.read_text()))
        except (json.JSONDecodeError, ConfigError, TypeError) as error:
            raise RunFolderError(f"{file} is damaged or from another version: {error}") from None

    def append_metrics(self, record: dict) -> None:
        if not self.log_metrics:
            return
        with open(self.path / METRICS, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        file = self.path / METRICS
        if not file.is_file():
            return []
        records = []
        for line in file.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything before it is good
        return records

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint_files(self) -> list[Path]:
        """The run's checkpoints, newest (highest step) first."""
        folder = self.path / CHECKPOINTS
        if not folder.is_dir():
            return []
        return sorted(folder.glob("step-[0-9]*.pt"), key=lambda p: int(p.stem[5:]), reverse=True)

    def save_checkpoint(self, state: dict, generator_weights: dict, keep: int = 3) -> Path:
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
        atomic_write_bytes(self.path / GENERATOR, save_safetensors(weights, metadata={"format": "pt"}))
        for old in self.checkpoint_files()[max(keep, 1):]:
            old.unlink(missing_ok=True)
        for stale in folder.glob(".*.tmp"):  # left by a write that a kill cut short
            stale.unlink(missing_ok=True)
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

    def truncate_metrics(self, last_step: int) -> list[dict]:
        """Keeps the records up to ``last_step`` (a resumed run re-logs what follows) and returns them."""
        records = [r for r in self.read_metrics() if r.get("step", 0) <= last_step]
        atomic_write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in records))
        return records

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
        return json.loads(file.read_text()) if file.is_file() else {}
