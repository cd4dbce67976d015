"""The training doctor: a Trainer callback that runs the detectors as records arrive, and its probe.

The detectors themselves are pure functions of the metric stream (:mod:`wganlab.observe.detectors`),
so the callback here and ``wganlab doctor RUN_DIR`` give the same answers.
"""

from __future__ import annotations

import copy
import math
import sys

import torch

from wganlab.core.objectives import OBJECTIVES
from wganlab.observe.detectors import (  # noqa: F401  (the doctor's public names)
    DETECTORS, EARLY, FATAL, PROBE_OPENING, PROBE_STEPS, SUSTAIN, WARNING, Finding, context_of, diagnose, too_short,
    too_short_text)
from wganlab.training import step
from wganlab.training.build import build_critic

# -- the probe: does the critic still have room to improve? ------------------------------------------

def probe_critic(trainer, steps: int = PROBE_STEPS, seed: int = 0) -> dict:
    """Trains a copy of the critic ``steps`` more steps (its own RNG, the run untouched) and
    returns the held-out Wasserstein estimate before and after, and the relative gain."""
    # A fresh critic with the run's weights, not a deepcopy: under torchrun a deepcopy would
    # carry DDP's gradient hooks into the probe and corrupt the run's next all-reduce.
    critic = build_critic(trainer.config, trainer.dataset.shape).to(trainer.device)
    critic.load_state_dict(trainer.critic.state_dict())
    optimizer = type(trainer.opt_d)(critic.parameters(), **trainer.opt_d.defaults)
    # a deep copy: load_state_dict keeps the saved moment tensors themselves, so the probe's
    # steps would otherwise move the run's own Adam moments
    optimizer.load_state_dict(copy.deepcopy(trainer.opt_d.state_dict()))
    rng = torch.Generator().manual_seed(seed)
    batch = trainer.local_batch  # the run's per-process batch (the global one under torchrun)

    # eval-mode samples (trainer.generate): a BatchNorm generator's running statistics stay the run's
    held_fake = trainer.generate(trainer.held_z)

    @torch.no_grad()
    def estimate():
        return float(critic(trainer.held_real).mean() - critic(held_fake).mean())

    before = estimate()
    for _ in range(steps):
        real = trainer.dataset.sample(batch, generator=rng).to(trainer.device)
        fake = trainer.generate(torch.randn(batch, trainer.config.latent_dim, generator=rng).to(trainer.device))
        terms = step.critic_terms(trainer.objective, trainer.constraint, critic, real, fake, rng,
                                  pack=trainer.config.pack)
        step.critic_update(terms, trainer.constraint, critic, optimizer)
    after = estimate()
    gain = (after - before) / max(abs(after), 1e-8)
    return {"w_before": before, "w_after": after, "critic_gain": gain}


def probe_lines_planned(steps: int, log_every: int) -> int:
    """Train lines a run planned for ``steps`` steps, logging every ``log_every``, has at or after
    the opening (PROBE_OPENING) that the ``critic_not_optimal`` detector skips: the probes it can read."""
    if steps <= 0 or log_every <= 0:
        return 0
    first = max(1, math.ceil(PROBE_OPENING * steps / log_every)) * log_every  # the first logged step >= opening
    lines = (steps - first) // log_every + 1 if first <= steps else 0
    return lines + (1 if steps % log_every else 0)  # the last step is always logged


class DoctorStop(RuntimeError):
    """Raised by ``wganlab train --strict`` callers to report why the run was stopped."""


class Doctor:
    """A Trainer callback that runs every detector as records arrive.

    Each finding is printed once (to ``stream``) when it first holds, emitted through the
    trainer (``metrics.jsonl``, TensorBoard, the live view) as a ``finding`` record, and kept
    in ``self.findings``. Probe records are emitted the same way. With ``strict``, a
    fatal finding asks the trainer to stop (it finishes the step, evaluates and writes its
    files). For Wasserstein runs the doctor probes the critic at each train line (a copy, with
    its own RNG: the run itself is unchanged).
    """

    def __init__(self, strict: bool = False, stream=None, probe: bool = True):
        self.strict = strict
        self.stream = stream if stream is not None else sys.stderr
        self.probe = probe
        self.records: list[dict] = []
        self.findings: list[Finding] = []
        self._fired: set[str] = set()

    def on_record(self, trainer, record: dict) -> None:
        kind = record.get("kind")
        if kind == "finding":  # our own, coming back through trainer.emit
            return
        self.records.append(record)
        if kind == "probe":  # read with the train line it follows, below
            return
        if self.probe and kind == "train" and OBJECTIVES[trainer.config.objective].wasserstein \
                and math.isfinite(record.get("w_estimate", math.nan)) and self._probe_can_judge(trainer.config):
            trainer.emit({"kind": "probe", "step": record["step"], **probe_critic(trainer, seed=record["step"])})
        self._run_detectors(trainer, context_of(trainer.config))

    @staticmethod
    def _probe_can_judge(config) -> bool:
        """speed: probe only a run planned long enough for its detector (SUSTAIN probes after its
        opening); a shorter run's probes could never be read (a 1-step conv run spent 0.7 s
        on one), and ``wganlab doctor`` says it was too short for them."""
        return probe_lines_planned(config.steps, config.log_every) >= SUSTAIN

    def _run_detectors(self, trainer, context: dict) -> None:
        for name, detector in DETECTORS.items():
            if name in self._fired:
                continue
            finding = detector(self.records, context)
            if finding is None:
                continue
            self._fired.add(name)
            self.findings.append(finding)
            print(finding.text(), file=self.stream, flush=True)
            trainer.emit(finding.to_record())  # to metrics.jsonl, TensorBoard and the live view
            if self.strict and finding.severity == FATAL and trainer.stop_reason is None:
                trainer.stop_reason = f"doctor: {finding.title} at step {finding.step} (--strict)"

    def on_end(self, trainer, summary: dict) -> None:
        # once more on the finished stream: what holds at the last evaluation (one is enough for an
        # image run's class histogram) is named even if it held only there
        context = {**context_of(trainer.config), "finished": True}
        self._run_detectors(trainer, context)
        summary["findings"] = [f.detector for f in self.findings]
        if not self.findings:
            short = too_short_text(self.records, context)
            if short:
                summary["doctor_too_short"] = [name for name, *_ in too_short(self.records, context)]
                print(f"[doctor] {short}", file=self.stream, flush=True)
