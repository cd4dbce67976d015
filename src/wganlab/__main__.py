"""``python -m wganlab`` and the ``wganlab`` command: the CLI, with a Ctrl-C at any moment (also
while torch is still being imported) ending in one line instead of a traceback."""

import sys


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


if __name__ == "__main__":
    sys.exit(entry())
