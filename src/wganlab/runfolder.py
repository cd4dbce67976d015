"""The run folder: everything a run leaves behind, written so that a kill loses nothing.

Layout::

    RUN/config.json          the resolved config
    RUN/metrics.jsonl        one JSON object per log or eval line, appended and flushed
    RUN/checkpoint.pt        full training state (atomic: temp file, fsync, rename)
    RUN/generator.safetensors  weights of the reported generator (EMA when on)
    RUN/samples.npy          final samples, (N, D)
    RUN/summary.json         final metrics
    RUN/*.png, RUN/report.html
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
GENERATOR = "generator.safetensors"
SAMPLES = "samples.npy"
SUMMARY = "summary.json"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` so that ``path`` holds either its old or its new content, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


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
                raise RunFolderError(f"--out {path} already holds a run; pass --overwrite to replace it "
                                     f"or choose another --out")
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

    def save_checkpoint(self, trainer) -> None:
        from safetensors.torch import save as save_safetensors

        buffer = io.BytesIO()
        torch.save(trainer.state_dict(), buffer)
        atomic_write_bytes(self.path / CHECKPOINT, buffer.getvalue())
        weights = {k: v.detach().cpu().contiguous() for k, v in trainer.sampler.state_dict().items()}
        atomic_write_bytes(self.path / GENERATOR, save_safetensors(weights, metadata={"format": "pt"}))

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
