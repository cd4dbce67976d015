"""GAN objectives as pure functions of critic outputs, one module per game.

The registry is every module of this package: each defines ``OBJECTIVES``, a tuple of
:class:`Objective` entries that describe themselves (parameters, whether the game is a
Wasserstein one, whether its generator loss reads the real scores). Adding a game is one
module here, plus its preset and its tests; the config, the CLI and the doctor read the
declarations.

References:
    Goodfellow et al. 2014, "Generative Adversarial Nets" (minimax and non-saturating).
    Arjovsky, Chintala, Bottou 2017, "Wasserstein GAN".
    Mao et al. 2017, "Least Squares Generative Adversarial Networks" (a=0, b=1, c=1).
    Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018 (the hinge loss).
    Berthelot, Schumm, Metz 2017, "BEGAN: Boundary Equilibrium GANs".
    Jolicoeur-Martineau 2019, "The relativistic discriminator" (RaGAN).
"""

from __future__ import annotations

import importlib
import pkgutil

from wganlab.core.objectives.base import CriticLoss, Objective, ObjectiveLosses, Param, check_params
from wganlab.core.objectives.began import (BoundaryEquilibrium, began, began_convergence, began_critic_loss,
                                           began_generator_loss, began_k_update)
from wganlab.core.objectives.classifier import (classifier_critic_loss, classifier_critic_sample_grads,
                                                minimax, minimax_generator_loss, non_saturating,
                                                non_saturating_generator_loss)
from wganlab.core.objectives.hinge import hinge, hinge_critic_loss, hinge_critic_sample_grads
from wganlab.core.objectives.least_squares import (least_squares_critic_loss, least_squares_critic_sample_grads,
                                                   least_squares_generator_loss, lsgan)
from wganlab.core.objectives.wasserstein import (wasserstein, wasserstein_critic_loss,
                                                 wasserstein_critic_sample_grads, wasserstein_generator_loss)

_ORDER = ("minimax", "non-saturating", "wasserstein")  # listed first; the rest alphabetically


def _discover() -> dict[str, Objective]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for objective in getattr(module, "OBJECTIVES", ()):
            if objective.name in found:
                raise RuntimeError(f"two objectives are named {objective.name!r}")
            found[objective.name] = objective
    first = [name for name in _ORDER if name in found]
    return {name: found[name] for name in first + sorted(set(found) - set(first))}


# name -> entry, one per game of every module of this package
OBJECTIVES: dict[str, Objective] = _discover()


def get_objective(name: str, **values) -> Objective:
    """The named objective, built from the config ``values`` its ``params`` name (others are
    ignored); games with parameters or state (BEGAN) are built fresh for each call."""
    try:
        entry = OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}") from None
    if entry.build is None:
        return entry
    given = {p.key: values[p.key] for p in entry.params if p.key in values}
    check_params(entry.params, given)
    return entry.build(**given)


__all__ = ["OBJECTIVES", "BoundaryEquilibrium", "CriticLoss", "Objective", "ObjectiveLosses", "Param", "began",
           "began_convergence", "began_critic_loss", "began_generator_loss", "began_k_update", "check_params",
           "classifier_critic_loss", "classifier_critic_sample_grads", "get_objective", "hinge",
           "hinge_critic_loss", "hinge_critic_sample_grads", "least_squares_critic_loss",
           "least_squares_critic_sample_grads", "least_squares_generator_loss", "lsgan", "minimax",
           "minimax_generator_loss", "non_saturating", "non_saturating_generator_loss", "wasserstein",
           "wasserstein_critic_loss", "wasserstein_critic_sample_grads", "wasserstein_generator_loss"]
