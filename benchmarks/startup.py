"""What a one-step run costs above ``import torch``, as whole processes (issue 16's start-up row).

Alternates, round after round, ``python -c "import torch"`` and ``wganlab train --steps 1
--eval-every 0 --preset P`` for each preset (each run writing its whole default run folder), and
prints each command's wall times, their medians and the run's median above torch's.
``--against SRC`` adds the same runs of another checkout's ``src`` (``PYTHONPATH``), alternated
with these, for a before/after in one run. Take it on an idle machine.

    python benchmarks/startup.py --rounds 5 --presets wgan-gp wgan gan
    python benchmarks/startup.py --against /tmp/old/src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def wall(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--presets", nargs="+", default=["wgan-gp"])
    parser.add_argument("--against", help="another checkout's src folder, run alternated as 'before'")
    args = parser.parse_args(argv)
    sources = {"now": str(SRC)}
    if args.against:
        sources = {"before": str(Path(args.against).resolve()), **sources}
    times: dict[str, list[float]] = {"import torch": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            times["import torch"].append(wall([sys.executable, "-c", "import torch"]))
            for preset in args.presets:
                for label, src in sources.items():
                    env = dict(os.environ, PYTHONPATH=src)
                    out = Path(scratch) / f"{label}-{preset}-{round_}"
                    command = [sys.executable, "-m", "wganlab", "train", "--preset", preset, "--steps", "1",
                               "--eval-every", "0", "--out", str(out)]
                    times.setdefault(f"{preset} ({label})", []).append(wall(command, env))
    torch_median = statistics.median(times["import torch"])
    print(f"{'command':<28} {'median s':>9} {'above torch':>12}  all (s)")
    for name, values in times.items():
        median = statistics.median(values)
        above = "-" if name == "import torch" else f"+{median - torch_median:.2f}"
        print(f"{name:<28} {median:>9.2f} {above:>12}  {' '.join(f'{v:.2f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
