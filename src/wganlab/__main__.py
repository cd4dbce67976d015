"""``python -m wganlab`` and the ``wganlab`` command: the CLI, with a Ctrl-C at any moment (also
while torch is still being imported) ending in one line instead of a traceback, and an exit that
skips the interpreter's teardown."""

import atexit
import os
import sys
import threading


def entry() -> int:
    sidecar = None
    try:
        if sys.argv[1:2] == ["train"]:  # before torch: POT and matplotlib load on the other core
            from wganlab.util import sidecar

            sidecar.start()
        from wganlab.util.interrupt import held_interrupt

        with held_interrupt():  # torch's import must not see a Ctrl-C (it aborts the process)
            from wganlab.cli import main

        return main()
    except KeyboardInterrupt:  # main() catches its own; this is one during the imports
        print("wganlab: interrupted", file=sys.stderr)
        return 130
    finally:
        if sidecar is not None:
            sidecar.stop()


def command() -> None:
    """The ``wganlab`` command and ``python -m wganlab``: :func:`entry`, then :func:`exit_now`."""
    exit_now(entry())


def exit_now(code: int | None) -> None:
    """Ends the process with ``code`` once its threads, exit handlers and streams are done.

    Python's own teardown after torch (freeing its modules and their C++ state) takes 0.5-0.9 s on
    2 cores, more than a short run's steps; every file is closed and every answer printed before
    this, so the process leaves by ``os._exit`` instead. A tracer or profiler (coverage, cProfile,
    a debugger) and a torchrun worker get the ordinary exit.
    """
    if sys.gettrace() is not None or sys.getprofile() is not None or os.environ.get("WORLD_SIZE", "1") != "1":
        sys.exit(code)
    # What the interpreter does first at exit: threading's exit callbacks, which stop the idle
    # workers of every ThreadPoolExecutor (torch.compile's among them), then a join of the
    # non-daemon threads. Joining without the callbacks waits for those workers forever.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    else:  # an interpreter without it: join what can end
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()  # e.g. logging's flush and the side processes' stop
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``) or a closed stream: nothing to keep
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    command()
