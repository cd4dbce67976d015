"""Adam and RMSprop as torch.optim computes them, without importing torch._dynamo.

speed: torch.optim wraps its methods for torch.compile (``torch._disable_dynamo`` on
``zero_grad``/``state_dict``/``add_param_group``/... and on the functional ``adam``/``rmsprop``;
``_use_grad_for_differentiable`` on ``step``), and those wrappers import ``torch._dynamo`` at
their first call: 0.8 s of a one-step run (`python -X importtime`). An eager run never traces an
optimiser, so here each wrapper is given the plain function as its cached "disabled" form (the
cache torch fills itself on the first call) and ``step`` runs its body under ``no_grad``, which is
what the wrapper does outside a compiled region. The update is torch's own, bit for bit (a test).

Once ``torch._dynamo`` is loaded (a compiled run, a user's torch.compile) the stock classes are
used, so a compiled region still sees torch's graph breaks.
"""

from __future__ import annotations

import importlib
import sys

import torch

_DISABLE_WRAPPER = "_compile.py"  # the file of torch._disable_dynamo's lazy wrapper


def _precache_plain(function) -> None:
    """Give a ``torch._disable_dynamo`` wrapper its cached form: the plain function."""
    plain = getattr(function, "__wrapped__", None)
    code = getattr(function, "__code__", None)
    if plain is not None and code is not None and code.co_filename.endswith(_DISABLE_WRAPPER):
        if getattr(plain, "__dynamo_disable", None) is None:
            setattr(plain, "__dynamo_disable", plain)


def _prepare() -> bool:
    """True when the dynamo-free classes can be used: dynamo not loaded and the wrappers found."""
    if "torch._dynamo" in sys.modules:
        return False
    for value in vars(torch.optim.Optimizer).values():
        _precache_plain(value)
    for module_name, name in (("torch.optim.adam", "adam"), ("torch.optim.rmsprop", "rmsprop")):
        functional = getattr(importlib.import_module(module_name), name)
        inner = getattr(functional, "__wrapped__", None)  # _disable_dynamo_if_unsupported's wrapper
        if inner is None:
            return False
        for cell in functional.__closure__ or ():
            if callable(cell.cell_contents):
                _precache_plain(cell.cell_contents)
    return all(hasattr(cls.step, "__wrapped__") for cls in (torch.optim.Adam, torch.optim.RMSprop))


class EagerAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose ``step`` skips the compile wrapper (same update, same state)."""

    def step(self, closure=None):
        with torch.no_grad():
            return torch.optim.Adam.step.__wrapped__(self, closure)


class EagerRMSprop(torch.optim.RMSprop):
    """``torch.optim.RMSprop`` whose ``step`` skips the compile wrapper (same update, same state)."""

    def step(self, closure=None):
        with torch.no_grad():
            return torch.optim.RMSprop.step.__wrapped__(self, closure)


def optimizer_classes():
    """(Adam class, RMSprop class): the dynamo-free ones where they apply, else torch's."""
    if _prepare():
        return EagerAdam, EagerRMSprop
    return torch.optim.Adam, torch.optim.RMSprop
