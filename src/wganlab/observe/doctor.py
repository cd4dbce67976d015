"""The training doctor: detectors that read the metric stream and say why a run is failing.

Every detector is a pure function ``(records, context) -> Finding | None`` over the records a
run writes to ``metrics.jsonl`` (``train`` lines, ``eval`` lines and the doctor's own
``probe`` lines), so it gives the same answer during training (the :class:`Doctor`
callback) and afterwards (``wganlab doctor RUN_DIR``). A finding names the step where its
condition first held, what it means, and which config knob to try.

The statistics come from the trainer's log lines (``wganlab.training.telemetry``:
the train records and their diagnostics): losses, D's accuracy, gradient and parameter norms, the spread of
generated samples relative to the data, and the critic's input-gradient norms at
real-fake interpolates. Thresholds are relative to the run's own early values where a scale
is needed, and every condition must hold on ``SUSTAIN`` consecutive log lines, so a single
noisy line raises nothing.

References for the failure modes:
    Arjovsky & Bottou 2017, "Towards Principled Methods for Training GANs" (vanishing gradient).
    Gulrajani et al. 2017, Fig. 1 (exploding and vanishing critic gradients under clipping).
    Metz et al. 2017; Srivastava et al. 2017 (mode collapse on mixtures of Gaussians).
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from wganlab.core.constraints import CONSTRAINTS
from wganlab.core.objectives import OBJECTIVES
from wganlab.training import step
from wganlab.training.build import build_critic

SUSTAIN = 3  # consecutive log lines a condition must hold on
EARLY = 3  # log lines that set a run's early scale
FATAL, WARNING = "fatal", "warning"
@dataclass(frozen=True)
class Finding:
    """One diagnosis: ``detector`` held from ``step`` on; ``evidence`` holds the numbers."""

    detector: str
    step: int
    severity: str
    title: str
    meaning: str
    fix: str
    evidence: dict

    def to_record(self) -> dict:
        return {"kind": "finding", **asdict(self)}

    @classmethod
    def from_record(cls, record: dict) -> Finding:
        """The inverse of :meth:`to_record` (a finding read back from metrics.jsonl or a callback)."""
        return cls(**{k: v for k, v in record.items() if k != "kind"})

    def text(self) -> str:
        numbers = ", ".join(f"{k} {_fmt(v)}" for k, v in self.evidence.items())
        return (f"[doctor] {self.severity.upper()} at step {self.step}: {self.title} ({numbers}).\n"
                f"  what it means: {self.meaning}\n  what to try: {self.fix}")


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _train(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "train"]


def _sustained(rows: list[dict], condition: Callable[[dict], bool], start: int = 0) -> dict | None:
    """The row at which ``condition`` has held on SUSTAIN consecutive rows (from ``start``), or None."""
    run = 0
    for index, row in enumerate(rows):
        if index < start:
            continue
        run = run + 1 if condition(row) else 0
        if run >= SUSTAIN:
            return row
    return None


def _early(rows: list[dict], key: str, how=max) -> float | None:
    values = [r[key] for r in rows[:EARLY] if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return how(values) if len(values) == EARLY else None


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


# -- the detectors ----------------------------------------------------------------------------------

def non_finite(records: list[dict], context: dict) -> Finding | None:
    """Any NaN or Inf in a train or eval line."""
    for record in records:
        if record.get("kind") not in ("train", "eval"):
            continue
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return Finding("non_finite", record["step"], FATAL, "non-finite values",
                           "the losses or weights overflowed: the run cannot recover from NaN/Inf",
                           "lower lr_d and lr_g (by 10x), add a Lipschitz constraint (constraint = "
                           "\"gradient-penalty\"), and check the data for NaN",
                           {"fields": ", ".join(bad[:4])})
    return None


def vanishing_generator_gradient(records: list[dict], context: dict) -> Finding | None:
    """grad_norm_g 100x below its early value while D's accuracy is ~1."""
    rows = _train(records)
    early = _early(rows, "grad_norm_g")
    if early is None or not all("d_accuracy" in r for r in rows[:EARLY]):
        return None
    row = _sustained(rows, lambda r: r["grad_norm_g"] < early / 100 and r.get("d_accuracy", 0) >= 0.95, EARLY)
    if row is None:
        return None
    return Finding("vanishing_gradient", row["step"], FATAL, "the generator's gradient has vanished",
                   "the discriminator separates real from generated data almost perfectly, and the "
                   "generator's loss is flat there: it receives no signal and stops learning",
                   "use objective = \"non-saturating\" or \"wasserstein\" with constraint = \"gradient-penalty\"; "
                   "weaken the discriminator (lower lr_d, n_critic = 1)",
                   {"grad_norm_g": row["grad_norm_g"], "early grad_norm_g": early, "d_accuracy": row["d_accuracy"]})


def discriminator_overpowering(records: list[dict], context: dict) -> Finding | None:
    """D's accuracy >= 0.99 with its loss ~0: D(x) and D(G(z)) saturated."""
    rows = _train(records)
    row = _sustained(rows, lambda r: r.get("d_accuracy", 0) >= 0.99 and abs(r["d_loss"]) <= 0.05)
    if row is None:
        return None
    return Finding("discriminator_overpowering", row["step"], WARNING, "the discriminator is saturated",
                   "D(x) -> 1 and D(G(z)) -> 0 on every sample: D has won, and its gradients carry little "
                   "information about how to move the generated samples",
                   "lower lr_d or n_critic; add constraint = \"r1\" (gp_weight 10) or \"spectral-norm\"; "
                   "or use objective = \"wasserstein\" with constraint = \"gradient-penalty\"",
                   {"d_accuracy": row["d_accuracy"], "d_loss": row["d_loss"]})


def mode_collapse(records: list[dict], context: dict) -> Finding | None:
    """Sample spread falling below a quarter of the data's and half its own peak, or modes captured falling."""
    rows = [r for r in _train(records) if "sample_spread" in r]
    # Falling, not low: a generator starts with all its samples close together, and one that
    # never spread is stuck (the gradient detectors name why), not collapsing.
    peak = 0.0
    run = 0
    for row in rows:
        spread = row["sample_spread"]
        collapsed = spread < 0.25 and spread < peak / 2
        run = run + 1 if collapsed else 0
        if run >= SUSTAIN:
            return Finding("mode_collapse", row["step"], WARNING, "the generator's samples have collapsed",
                           "generated samples are bunched together: their mean pairwise distance is a small "
                           "fraction of the real data's, so most of the distribution is not covered",
                           "use objective = \"wasserstein\" with constraint = \"gradient-penalty\"; lower lr_g "
                           "(or raise lr_d / n_critic); or unroll the critic (unroll_steps = 5, preset \"unrolled\")",
                           {"sample_spread": spread, "earlier peak": peak})
        peak = max(peak, spread)
    evals = [r for r in records if r.get("kind") == "eval" and "modes_captured" in r]
    best = 0
    for row in evals:
        if row["modes_captured"] <= best - 2 and row["high_quality_fraction"] >= 0.1:
            return Finding("mode_collapse", row["step"], WARNING, "modes captured are falling",
                           "samples still land on modes but on fewer of them than before: the generator "
                           "is dropping modes",
                           "use objective = \"wasserstein\" with constraint = \"gradient-penalty\"; lower lr_g; "
                           "or unroll the critic (unroll_steps = 5, preset \"unrolled\")",
                           {"modes_captured": row["modes_captured"], "best earlier": best})
        best = max(best, row["modes_captured"])
    return None


def oscillation(records: list[dict], context: dict) -> Finding | None:
    """Wasserstein games: the critic's estimate growing to 4x its early scale, or staying below
    -10% of it (the critic ranks generated data above real data).

    Parameter norms are logged but not used: the default preset's generator doubles its weight
    norm while converging, so their growth does not separate failing runs from healthy ones.
    """
    if not context.get("wasserstein"):
        return None  # for the classifier games w_estimate is a logit gap, not a distance
    rows = _train(records)
    scale = _early(rows, "w_estimate", how=lambda v: max(abs(x) for x in v))
    if not scale:
        return None
    row = _sustained(rows, lambda r: r["w_estimate"] >= 4 * scale, EARLY)
    if row is not None:
        return Finding("oscillation", row["step"], WARNING, "the Wasserstein estimate keeps growing",
                       "the critic's estimate E f(x) - E f(G(z)) has grown far beyond its early value: the "
                       "critic is not held Lipschitz, so the estimate is not a distance and the game diverges",
                       "constraint = \"gradient-penalty\" with gp_weight 10, or a lower lr_d; "
                       "update_rule = \"optimistic\" damps cycling",
                       {"w_estimate": row["w_estimate"], "early scale": scale})
    row = _sustained(rows, lambda r: r["w_estimate"] < -0.1 * scale, EARLY)
    if row is not None:
        return Finding("oscillation", row["step"], WARNING, "the critic ranks generated above real data",
                       "the Wasserstein estimate is negative on held-out data: the critic lags the generator "
                       "and the game is cycling rather than converging",
                       "raise n_critic or lr_d (TTUR, preset \"ttur\"); update_rule = \"optimistic\"",
                       {"w_estimate": row["w_estimate"], "early scale": scale})
    return None


def exploding_gradients(records: list[dict], context: dict) -> Finding | None:
    """The critic's parameter or input gradient norm 30x above its early median."""
    rows = _train(records)
    for key in ("grad_norm_d", "input_grad_norm"):
        early = _early(rows, key, how=_median)
        if not early:
            continue
        row = _sustained(rows, lambda r: r.get(key, 0) > 30 * early, EARLY)
        if row is not None:
            return Finding("exploding_gradients", row["step"], FATAL, "the critic's gradients are exploding",
                           f"{key} is {row[key] / early:.0f}x its early value: in a deep critic, gradients "
                           "grow layer by layer (weight clipping with a large c does this) and training diverges",
                           "use constraint = \"gradient-penalty\" (gp_weight 10) instead of clipping, or a "
                           "smaller clip (clip = 0.01), or a shallower critic (depth)",
                           {key: row[key], "early": early})
    return None


def lipschitz_violation(records: list[dict], context: dict) -> Finding | None:
    """>= 90% of interpolates with ||grad f|| > 1.5 (when the critic should be 1-Lipschitz), or
    >= 50% of weights pinned at +-c."""
    rows = _train(records)
    if context.get("wasserstein") or context.get("unit_norm_target"):
        row = _sustained(rows, lambda r: r.get("lipschitz_over_1_5", 0) >= 0.9, EARLY)
        if row is not None:
            return Finding("lipschitz_violation", row["step"], WARNING, "the critic is far from 1-Lipschitz",
                           "nearly every real-fake interpolate has an input gradient norm above 1.5: the "
                           "constraint does not hold, so the critic's estimate is not the Wasserstein distance",
                           "raise gp_weight (10 is the WGAN-GP paper's), or use constraint = \"gradient-penalty\" "
                           "or \"spectral-norm\"",
                           {"fraction over 1.5": row["lipschitz_over_1_5"], "mean norm": row.get("input_grad_norm")})
    row = _sustained(rows, lambda r: r.get("clipped_fraction", 0) >= 0.5, EARLY)
    if row is not None:
        return Finding("lipschitz_violation", row["step"], WARNING, "most critic weights are pinned at +-c",
                       "weight clipping holds most weights at the bound: the critic has lost its capacity and "
                       "models only simple functions",
                       "use constraint = \"gradient-penalty\" instead of clip, or a larger clip",
                       {"clipped_fraction": row["clipped_fraction"]})
    return None


def critic_not_optimal(records: list[dict], context: dict) -> Finding | None:
    """The doctor's probes: extra critic steps at least double the Wasserstein estimate
    (healthy default runs show sustained gains of 0.5-0.6 in their first half, so a
    critic that merely lags a little is not a finding) and by >= 10% of the run's early scale (near convergence the estimate is ~0, and a
    large relative rise of a tiny number means nothing), after the first fifth of the run: in
    the opening steps every critic is still catching up with the data."""
    opening = 0.2 * (context.get("steps") or 0)
    probes = [r for r in records if r.get("kind") == "probe" and r["step"] >= opening]
    scale = _early(_train(records), "w_estimate", how=lambda v: max(abs(x) for x in v))
    if not scale:
        return None
    row = _sustained(probes, lambda r: r["critic_gain"] >= 1.0 and r["w_after"] - r["w_before"] >= 0.1 * scale)
    if row is None:
        return None
    return Finding("critic_not_optimal", row["step"], WARNING, "the critic is far from optimal",
                   f"{PROBE_STEPS} extra critic steps raise the critic's Wasserstein estimate by "
                   f"{100 * row['critic_gain']:.0f}%: the generator is trained against a poor critic",
                   "raise n_critic or lr_d (TTUR: lr_d > lr_g, preset \"ttur\")",
                   {"critic_gain": row["critic_gain"], "w_estimate": row["w_before"], "early scale": scale})


DETECTORS: dict[str, Callable[[list[dict], dict], Finding | None]] = {
    "non_finite": non_finite,
    "vanishing_gradient": vanishing_generator_gradient,
    "discriminator_overpowering": discriminator_overpowering,
    "mode_collapse": mode_collapse,
    "oscillation": oscillation,
    "exploding_gradients": exploding_gradients,
    "lipschitz_violation": lipschitz_violation,
    "critic_not_optimal": critic_not_optimal,
}


def context_of(config) -> dict:
    """What detectors may know about a run besides its records (a TrainConfig or its dict)."""
    values = config if isinstance(config, dict) else config.to_dict()
    context = {key: values.get(key) for key in ("objective", "constraint", "steps", "data")}
    # what the registries declare of the game and the constraint, not name lists
    objective, constraint = OBJECTIVES.get(context["objective"]), CONSTRAINTS.get(context["constraint"])
    context["wasserstein"] = bool(objective and objective.wasserstein)
    context["unit_norm_target"] = bool(constraint and constraint.unit_norm_target)
    return context


def diagnose(records: list[dict], context: dict) -> list[Finding]:
    """Every detector over a finished record stream; the findings in step order."""
    records = [r for r in records if r.get("kind") != "finding"]
    found = [f for f in (detector(records, context) for detector in DETECTORS.values()) if f is not None]
    return sorted(found, key=lambda f: f.step)


# -- the probe: does the critic still have room to improve? ------------------------------------------

PROBE_STEPS = 5


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
        terms = step.critic_terms(trainer.objective, trainer.constraint, critic, real, fake, rng)
        step.critic_update(terms, trainer.constraint, critic, optimizer)
    after = estimate()
    gain = (after - before) / max(abs(after), 1e-8)
    return {"w_before": before, "w_after": after, "critic_gain": gain}


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
                and math.isfinite(record.get("w_estimate", math.nan)):
            trainer.emit({"kind": "probe", "step": record["step"], **probe_critic(trainer, seed=record["step"])})
        context = context_of(trainer.config)
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
        summary["findings"] = [f.detector for f in self.findings]
