"""Command line: ``wganlab train | sample | eval | presets | compare | doctor | sweep | experiment |
data fetch | evalnet train``.

Every error a user can cause ends in one line on stderr naming the problem and the fix,
and exit status 2; nothing is written before the config and the inputs are checked.
"""

from __future__ import annotations

import sys

from wganlab.cli import commands
from wganlab.cli.parser import UsageError, build_parser
from wganlab.config import ConfigError

__all__ = ["UsageError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    from wganlab.runs.folder import RunFolderError
    from wganlab.training.loop import CheckpointMismatchError, NonFiniteError

    handlers = {name: getattr(commands, name) for name in
                ("train", "sample", "eval", "presets", "compare", "doctor", "sweep", "experiment", "data", "evalnet")}
    try:
        args = build_parser().parse_args(argv)
        return handlers[args.command](args)
    except (UsageError, ConfigError, RunFolderError, CheckpointMismatchError, ValueError) as error:
        print(f"wganlab: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteError as error:
        print(f"wganlab: training diverged: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wganlab: interrupted", file=sys.stderr)
        return 130

