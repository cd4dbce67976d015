"""``critic_backward = "compiled"``: the hand-written critic step through ``torch.compile``.

The hand-written step (``core.critic_gradients``) has no double backward, so inductor traces it
whole and fuses its elementwise work (the interpolates, the slope masks, the norms, the penalty's
closed form) into a few C++ loops around the matmuls. What that buys is per-op dispatch, which is
most of a small critic's step on a CPU; what it costs is the compilation, once per process (~10-30
s on 2 cores), so it is a choice for long runs (docs/speed.md has the break-even).

Where compiling fails (no C++ compiler, an unsupported platform, a torch without inductor) the
run says so in one line and goes on with the eager step, the same mathematics.
"""

from __future__ import annotations

import sys
from typing import Callable


class CompiledOrEager:
    """``fn`` compiled (inductor, static shapes) at its first call; eager from the first failure on.

    speed: by hand the critic step is ~60 small ops; inductor makes a handful of kernels of them
    (measured in docs/speed.md). Hand-written because torch.compile has no "fall back and say so"
    mode of its own: ``torch._dynamo.config.suppress_errors`` falls back silently, per frame.
    """

    def __init__(self, fn: Callable, stream=None):
        self.eager = fn
        self.stream = stream
        self._compiled = None
        self.failed: str | None = None  # why compiling failed, once it has

    def __call__(self, *args):
        if self.failed is None:
            try:
                if self._compiled is None:
                    import torch

                    self._compiled = torch.compile(self.eager, dynamic=False, fullgraph=True)
                return self._compiled(*args)
            except Exception as error:  # any backend failure: the eager step computes the same
                # the first line that says something ("backend='inductor' raised:" alone does not)
                said = [line.strip() for line in str(error).splitlines() if line.strip()
                        and not line.strip().endswith("raised:")]
                self.failed = f"{type(error).__name__}: {said[0] if said else ''}"
                print(f"wganlab: critic_backward = \"compiled\" could not compile the critic step ({self.failed[:200]}); "
                      f"training with the eager hand-written step (critic_backward = \"auto\")",
                      file=self.stream or sys.stderr, flush=True)
        return self.eager(*args)


def not_compiled(critic_backward: str, say: bool, stream=None) -> None:
    """None, the autograd step's marker; where "compiled" was asked for, one line that says why not."""
    if critic_backward == "compiled" and say:
        print("wganlab: critic_backward = \"compiled\" compiles the hand-written critic step of a plain MLP critic "
              "(one process); this run's critic takes autograd's step, not compiled", file=stream or sys.stderr, flush=True)
