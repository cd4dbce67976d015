"""The training doctor's detectors that read the metric stream and say why a run is failing.

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

import math
from dataclasses import asdict, dataclass
from typing import Callable

from wganlab.core.constraints import CONSTRAINTS
from wganlab.core.objectives import OBJECTIVES

SUSTAIN = 3  # consecutive log lines a condition must hold on
EARLY = 3  # log lines that set a run's early scale
FATAL, WARNING = "fatal", "warning"
PROBE_STEPS = 5  # critic steps of the doctor's probe (wganlab.observe.doctor.probe_critic)
PROBE_OPENING = 0.2  # the share of a run whose probes critic_not_optimal skips (the critic catching up)
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
    """Images: the class (or stacked-MNIST mode) histogram missing classes. Otherwise: the sample
    spread falling below a quarter of the data's and half its own peak, or modes captured falling."""
    found = _class_collapse(records, context)
    if found is not None:
        return found
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
                           _COLLAPSE_FIX, {"sample_spread": spread, "earlier peak": peak})
        peak = max(peak, spread)
    evals = [r for r in records if r.get("kind") == "eval" and "high_quality_fraction" in r]
    best = 0
    for row in evals:
        if row["modes_captured"] <= best - 2 and row["high_quality_fraction"] >= 0.1:
            return Finding("mode_collapse", row["step"], WARNING, "modes captured are falling",
                           "samples still land on modes but on fewer of them than before: the generator "
                           "is dropping modes",
                           _COLLAPSE_FIX, {"modes_captured": row["modes_captured"], "best earlier": best})
        best = max(best, row["modes_captured"])
    return None


_COLLAPSE_FIX = ("use objective = \"wasserstein\" with constraint = \"gradient-penalty\"; lower lr_g (or raise lr_d / "
                 "n_critic); or unroll the critic (unroll_steps = 5, preset \"unrolled\")")
# A class is kept when it holds at least a quarter of its share of the samples. The histogram
# is collapsed when 2 or more classes are lost, or its KL to uniform exceeds CLASS_KL (8 equal
# classes of 10 is 0.22 nats); stacked MNIST, when fewer than half the 1000 modes are hit and
# the mode KL exceeds 1 nat (healthy runs: ~0.1).
CLASS_KL, MODE_KL = 0.3, 1.0
RECOVERING = 0.6  # KL below this fraction of the previous evaluation's: still filling in (tests/observe)


def _collapsed_histogram(row: dict) -> dict | None:
    """The evidence that an eval line's class histogram has collapsed, or None."""
    if "class_counts" in row:
        counts = row["class_counts"]
        total = sum(counts) or 1
        kept = [c for c, k in enumerate(counts) if k >= total / (4 * len(counts))]
        if len(kept) <= len(counts) - 2 or row["class_kl"] > CLASS_KL:
            return {"classes kept": " ".join(map(str, kept)) or "none", "of": len(counts),
                    "class_kl": row["class_kl"]}
    elif "mode_kl" in row and "n_modes" in row:
        if row["modes_captured"] < row["n_modes"] / 2 and row["mode_kl"] > MODE_KL:
            return {"modes captured": row["modes_captured"], "of": row["n_modes"], "mode_kl": row["mode_kl"]}
    return None


def _histogram_kl(row: dict) -> float:
    return row["class_kl"] if "class_kl" in row else row["mode_kl"]


def _class_collapse(records: list[dict], context: dict) -> Finding | None:
    """Image runs: an evaluation after step 0 whose class histogram has collapsed, named once it
    holds on two evaluations in a row, or with the samples bunched (spread below half the data's
    at the last train line before it), or at the run's last evaluation: one is enough.

    Not while the histogram is still filling in: an evaluation whose KL to uniform is below
    RECOVERING times the previous evaluation's is a generator gaining classes (a young run, or
    the averaged generator of a short one catching up), not one losing them; it is judged at a
    later evaluation, if any."""
    evals = [r for r in records if r.get("kind") == "eval" and r.get("step", 0) > 0
             and ("class_counts" in r or "mode_kl" in r)]
    spreads = {r["step"]: r["sample_spread"] for r in _train(records) if "sample_spread" in r}
    held = None
    for index, row in enumerate(evals):
        evidence = _collapsed_histogram(row)
        if evidence is None:
            held = None
            continue
        if index and _histogram_kl(row) < RECOVERING * _histogram_kl(evals[index - 1]):
            held = None
            continue
        before = [spread for step, spread in spreads.items() if step <= row["step"]]
        bunched = bool(before) and before[-1] < 0.5
        last = context.get("finished") and index == len(evals) - 1
        if held is not None or bunched or last:
            if before:
                evidence["sample_spread"] = before[-1]
            kept = evidence.get("classes kept")
            what = (f"only classes {kept} of {evidence['of']} are drawn" if kept is not None
                    else f"{evidence['modes captured']} of {evidence['of']} modes are drawn")
            return Finding("mode_collapse", row["step"], WARNING, "the generator draws a few classes only",
                           f"{what}: the shipped classifier puts the generated images in a few classes, so the "
                           "generator covers only part of the data", _COLLAPSE_FIX, evidence)
        held = row
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
    opening = PROBE_OPENING * (context.get("steps") or 0)
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
    context = {**context, "finished": True}
    found = [f for f in (detector(records, context) for detector in DETECTORS.values()) if f is not None]
    return sorted(found, key=lambda f: f.step)


# What each detector needs before it can judge: (record kind, lines). A detector given fewer
# holds nothing whatever the run did; too_short names it, so "no findings" is never said of it.
_NEEDS = {
    "non_finite": ("train", 1),
    "vanishing_gradient": ("train", EARLY + SUSTAIN),
    "discriminator_overpowering": ("train", SUSTAIN),
    "mode_collapse": ("train", SUSTAIN),
    "oscillation": ("train", EARLY + SUSTAIN),
    "exploding_gradients": ("train", EARLY + SUSTAIN),
    "lipschitz_violation": ("train", EARLY + SUSTAIN),
    "critic_not_optimal": ("probe", SUSTAIN),
}


def too_short(records: list[dict], context: dict) -> list[tuple[str, str, int, int]]:
    """(detector, record kind, lines needed, lines the run has) for each detector that the records
    are too few to judge. The class histogram of an image run judges mode collapse from one
    evaluation after step 0."""
    counts = {kind: sum(1 for r in records if r.get("kind") == kind) for kind in ("train", "probe")}
    short = []
    for name, (kind, need) in _NEEDS.items():
        if name == "mode_collapse" and any(r.get("kind") == "eval" and r.get("step", 0) > 0
                                           and ("class_counts" in r or "mode_kl" in r) for r in records):
            continue
        if kind == "probe" and not context.get("wasserstein"):
            continue  # the probe runs for Wasserstein games only
        if counts[kind] < need:
            short.append((name, kind, need, counts[kind]))
    return short


def too_short_text(records: list[dict], context: dict) -> str | None:
    """One line naming the detectors the run is too short for and how to give them lines, or None."""
    short = too_short(records, context)
    if not short:
        return None
    names = ", ".join(f"{name} ({have} of {need} {kind} lines)" for name, kind, need, have in short)
    return (f"too short to judge: {names}; log more often (a lower --log-every) or train longer")
