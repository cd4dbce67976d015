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
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

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
    """``torch.optim.Adam`` whose ``step`` skips the compile wrapper (same update, same state).

    speed: with ``fused=True``, one parameter group and every parameter's state made (after the
    first step), ``step`` calls torch's fused Adam kernel itself with the lists it keeps, which
    is what ``Adam.step`` ends in after ~50 us of Python per call (grouping the tensors, reading
    the state) on a 3x128 critic, ~10% of a small net's generator step with its critic steps.
    The same kernel with the same arguments: the update and the state are torch's, bit for bit
    (a test). Anything else (hooks, amsgrad, maximize, a missing gradient, a tensor lr) takes
    torch's own path; a state loaded since makes the lists anew from it.
    """

    _direct = None  # (state dict, params, exp_avgs, exp_avg_sqs, steps) for the direct call

    def step(self, closure=None):
        if closure is None and self._direct_step():
            return None
        with torch.no_grad():
            return torch.optim.Adam.step.__wrapped__(self, closure)

    def _direct_step(self) -> bool:
        if len(self.param_groups) != 1 or self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks \
                or _global_optimizer_pre_hooks or _global_optimizer_post_hooks:
            return False
        group = self.param_groups[0]
        kept = self._direct
        if kept is None or kept[0] is not self.state or len(kept[1]) != len(group["params"]) \
                or any(a is not b for a, b in zip(kept[1], group["params"])):
            kept = self._direct = self._direct_lists(group)
            if kept is None:
                return False
        _, params, exp_avgs, exp_avg_sqs, steps = kept
        grads = [p.grad for p in params]
        lr = group["lr"]
        if any(g is None for g in grads) or isinstance(lr, torch.Tensor):
            return False
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr, beta1=beta1,
                               beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                               grad_scale=None, found_inf=None)
        return True

    def _direct_lists(self, group):
        if not group.get("fused") or group["amsgrad"] or group["maximize"] or group["capturable"] \
                or group["differentiable"] or group.get("decoupled_weight_decay"):
            return None
        params = list(group["params"])
        states = [self.state.get(p) for p in params]
        if not params or any(not st or "exp_avg" not in st for st in states):
            return None  # the first step makes the state, through torch's path
        if len({(p.device, p.dtype) for p in params}) != 1 or any(p.is_sparse for p in params):
            return None
        return (self.state, params, [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states],
                [st["step"] for st in states])


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
