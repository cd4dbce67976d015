"""A run's state: what an exact resume restores, the last good state, and the rollback.

:class:`TrainerState` is the part of the :class:`~wganlab.training.loop.Trainer` that saves
and restores it; checkpoint keys are those of the flat layout's trainer, so old run folders
resume.
"""

from __future__ import annotations

import copy
import random
import sys

import numpy as np
import torch


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN or Inf."""


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the run's config (another architecture or objective)."""


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's data, noise and interpolation stream; rank 0 is a single process's."""
    return seed + 1_000_033 * rank


def _numpy_state_to_torch(state) -> dict:
    # numpy's MT19937 state as tensors and ints, so a checkpoint loads with weights_only=True
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_torch(state: dict):
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])


class TrainerState:
    """Checkpoints, resume and rollback of a :class:`~wganlab.training.loop.Trainer` (a mixin:
    it reads the trainer's nets, optimisers, schedules, streams and counters)."""

    def _all_finite(self) -> bool:
        params = [p for net in (self.generator, self.critic) for p in net.parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def checkpoint(self) -> None:
        """Remembers the state as the last good one and, on rank 0 of a run with a folder, saves it.

        A state with a NaN or Inf parameter is never saved: it raises :class:`NonFiniteError`.
        """
        if not self._all_finite():
            raise NonFiniteError(f"a parameter became NaN or Inf before step {self.step}")
        self._good_state = self._snapshot()
        if self.run is not None and self.rank == 0:
            self.run.save_checkpoint(self.state_dict(), self.sampler.state_dict(), keep=self.config.keep_checkpoints,
                                     data_shape=tuple(self.dataset.shape))

    def _snapshot(self) -> dict:
        return copy.deepcopy({k: v for k, v in self.state_dict().items() if k != "history"})

    def _roll_back(self, error: NonFiniteError) -> bool:
        """Restores the last good state with halved learning rates; False when not allowed."""
        config = self.config
        if config.on_nonfinite != "rollback" or self.rollbacks >= config.max_rollbacks or self._good_state is None:
            return False
        bad_step, rollbacks, lr_scale = self.step, self.rollbacks + 1, self.lr_scale * 0.5
        self._load(copy.deepcopy(self._good_state))
        self.rollbacks, self.lr_scale = rollbacks, lr_scale
        self._apply_lr_scale()
        record = {"kind": "rollback", "step": self.step, "from_step": bad_step, "lr_scale": self.lr_scale,
                  "reason": str(error)}
        if self.rank == 0:
            print(f"wganlab: {error}; rolled back to step {self.step} with learning rates x{self.lr_scale:g} "
                  f"(rollback {self.rollbacks} of {config.max_rollbacks})", file=sys.stderr)
        self.emit(record)
        return True

    def _apply_lr_scale(self) -> None:
        for schedule, base in zip(self.schedules, (self.config.lr_g, self.config.lr_d)):
            schedule.base_lrs = [base * self.lr_scale]
            factor = schedule.lr_lambdas[0](schedule.last_epoch)
            for group in schedule.optimizer.param_groups:
                group["lr"] = base * self.lr_scale * factor

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything an exact resume needs; loadable with ``torch.load(weights_only=True)``."""
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "config": self.config.to_dict(),
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedules": [s.state_dict() for s in self.schedules],
            "objective": self.objective.equilibrium.state_dict() if self.objective.equilibrium else None,
            "update_rule": self.update_rule.state_dict(),
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_state_to_torch(np.random.get_state()),
            "python_rng": random.getstate(),
            "pending_sums": dict(self._sums),
            "pending_counts": dict(self._counts),
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "last_eval": self.last_eval,
            "last_train": self.last_train,
        }

    # what must match between a checkpoint's config and the run resuming it
    _ARCHITECTURE_KEYS = ("objective", "constraint", "optimizer", "update_rule", "latent_dim", "hidden", "depth",
                          "generator_batch_norm", "critic_norm", "net", "data", "ema", "pack", "critic_hidden",
                          "critic_depth", "maxout_pieces")

    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`; refuses one from another architecture with a clear error."""
        saved = state.get("config", {})
        differing = [k for k in self._ARCHITECTURE_KEYS if k in saved and saved[k] != getattr(self.config, k)]
        if differing:
            detail = ", ".join(f"{k} {saved[k]!r} vs {getattr(self.config, k)!r}" for k in differing)
            raise CheckpointMismatchError(f"the checkpoint comes from another architecture or objective ({detail}); "
                                          f"resume with "
                                          f"the run's own config, or start a new run")
        try:
            self._load(state)
        # OverflowError: a damaged Python RNG state (a negative word) fails random.setstate
        except (RuntimeError, KeyError, ValueError, TypeError, OverflowError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointMismatchError(f"the checkpoint does not fit this run's networks ({first[:200]}); "
                                          f"it comes from another architecture") from None
        self._good_state = self._snapshot()

    def _load(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for schedule, saved in zip(self.schedules, state["schedules"]):
            schedule.load_state_dict(saved)
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(_numpy_state_from_torch(state["numpy_rng"]))
        random.setstate(state["python_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self._sums = {k: v.to(self.device) for k, v in state.get("pending_sums", {}).items()}
        self._counts = dict(state.get("pending_counts", {}))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.rollbacks = int(state.get("rollbacks", 0))
        self.last_eval = state.get("last_eval")
        self.last_train = state.get("last_train")
        if self.objective.equilibrium is not None:
            self.objective.equilibrium.load_state_dict(state["objective"])
        self.update_rule.load_state_dict(state["update_rule"])
