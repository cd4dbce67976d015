"""The one list of headline metrics: what a run's summary leads with, everywhere it is shown
(the run report, the comparison page, the final line of ``wganlab train``, the progress bar,
the live view, ``Run``'s repr)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Headline:
    """A headline metric.

    Attributes:
        key: its key in eval records and ``summary.json``.
        label: how it is named to a reader.
        better: "max", "min", or None (context, not a score).
        fmt: format spec of its value ("" for text and counts).
        short: its label on the progress bar, or "" to leave it off the bar.
    """

    key: str
    label: str
    better: str | None
    fmt: str = ".4g"
    short: str = ""

    def format(self, value) -> str:
        return format(value, self.fmt) if isinstance(value, float) and self.fmt else str(value)


HEADLINE: tuple[Headline, ...] = (
    Headline("modes_captured", "modes captured", "max", "", "modes"),
    Headline("n_modes", "modes of the data", None, ""),
    Headline("high_quality_fraction", "high-quality fraction", "max", ".1%", "hq"),
    Headline("reverse_kl", "reverse KL (nats)", "min"),
    Headline("w1", "exact W1", "min", ".3f", "W1"),
    Headline("fid", "FID", "min", ".3g", "FID"),
    Headline("kid", "KID", "min"),
    Headline("feature_space", "feature space", None, ""),
    Headline("classes_covered", "classes covered", "max", "", "classes"),
    Headline("class_kl", "class KL (nats)", "min"),
    Headline("mode_kl", "mode KL (nats)", "min"),
    Headline("w_estimate", "critic's W estimate", None, ".3f"),  # informative, not a score
    Headline("steps", "steps", None, ""),
    Headline("wall_seconds", "wall seconds", "min", ".1f"),
)
BY_KEY = {metric.key: metric for metric in HEADLINE}
# the headline of a finished run as ``wganlab train`` prints it and ``Run`` shows it
FINAL = ("modes_captured", "n_modes", "high_quality_fraction", "reverse_kl", "w1", "fid", "classes_covered",
         "w_estimate", "wall_seconds")


def headline_of(summary: dict, keys=None) -> dict:
    """The headline metrics present in ``summary`` (all of them, or ``keys``), in the list's order."""
    wanted = [m.key for m in HEADLINE] if keys is None else list(keys)
    return {key: summary[key] for key in wanted if key in summary}
