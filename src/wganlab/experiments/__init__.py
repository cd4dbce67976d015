"""Experiments: each claim of the WGAN story as one command, asserted, plotted and reported.

``EXPERIMENTS`` maps a name to an :class:`~wganlab.experiments.base.Experiment`;
:func:`run_experiment` writes ``result.json``, PNG plots and a report section into a
folder, :func:`run_all` runs them all into one ``report.html``. Importing a module below
registers its experiment; the order here is the report's order.
"""

from wganlab.experiments.base import EXPERIMENTS, Experiment, run_all, run_experiment
from wganlab.report.experiments import write_experiments_report
from wganlab.experiments import (  # noqa: F401  (each registers its experiment)
    bilinear, divergences, vanishing, clip_vs_gp, loss_vs_quality, mode_collapse, mnist_modes, sensitivity,
)

__all__ = ["EXPERIMENTS", "Experiment", "run_all", "run_experiment", "write_experiments_report"]
