"""The flat layout's module paths (``wganlab.trainer``, ``wganlab.objectives``, ...) as aliases.

Each old name imports the module that now holds its code, as the same module object, so
old imports, ``monkeypatch`` targets and pickles keep working. One table instead of a
shim file per old module; nothing inside the package imports an old name (a test checks).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

OLD_PATHS = {
    "wganlab.objectives": "wganlab.core.objectives",
    "wganlab.constraints": "wganlab.core.constraints",
    "wganlab.nets": "wganlab.core.nets",
    "wganlab.critic_gradients": "wganlab.core.critic_gradients",
    "wganlab.update_rules": "wganlab.core.update_rules",
    "wganlab.image_metrics": "wganlab.metrics.images",
    "wganlab.evalnet": "wganlab.metrics.evalnet",
    "wganlab.runfolder": "wganlab.runs.folder",
    "wganlab.trainer": "wganlab.training.loop",
    "wganlab.sweep": "wganlab.training.sweep",
    "wganlab.distributed": "wganlab.training.distributed",
    "wganlab.doctor": "wganlab.observe.doctor",
    "wganlab.tensorboard_logger": "wganlab.observe.tensorboard",
    "wganlab.live": "wganlab.observe.live",
    "wganlab.image_report": "wganlab.observe.grids",
    "wganlab.compare": "wganlab.report.compare",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in OLD_PATHS:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(OLD_PATHS[spec.name])

    def exec_module(self, module):
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
