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


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _quiet_thread_disk_faults() -> None:
    """A disk fault in a writer thread (TensorBoard's) is reported once, by the main thread that
    flushes it, as one line; the thread's own traceback would be a second report."""
    import threading

    default = threading.excepthook

    def hook(args):
        if not issubclass(args.exc_type, OSError):
            default(args)

    threading.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    from wganlab.runs.folder import RunFolderError
    from wganlab.training.loop import CheckpointMismatchError, NonFiniteError

    _quiet_thread_disk_faults()
    handlers = {name: getattr(commands, name) for name in
                ("train", "sample", "eval", "presets", "compare", "doctor", "sweep", "experiment", "data", "evalnet")}
    try:
        args = build_parser().parse_args(argv)
        return handlers[args.command](args)
    except (UsageError, ConfigError, RunFolderError, CheckpointMismatchError, ValueError) as error:
        print(f"wganlab: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a disk or permission fault: the path and the cause
        from wganlab.util.files import describe_os_error

        print(f"wganlab: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("wganlab: error: out of memory; lower --batch-size, --hidden, --eval-samples or --w1-samples",
              file=sys.stderr)
        return 2
    except NonFiniteError as error:
        print(f"wganlab: training diverged: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wganlab: interrupted", file=sys.stderr)
        return 130

