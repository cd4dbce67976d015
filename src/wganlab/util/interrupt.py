"""Ctrl-C held back while C++ extensions import.

A KeyboardInterrupt raised inside Python code that a pybind11 extension calls while it loads
(torch, scipy under POT, matplotlib's ft2font) escapes as a C++ exception and aborts the process
(``terminate called ... pybind11::error_already_set``, exit -6). Inside ``held_interrupt()`` a
Ctrl-C is only recorded, and handed to the handler that was there before (Python's: a
KeyboardInterrupt; the trainer's: stop after this step) when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def held_interrupt():
    """Defer SIGINT to the end of the block (main thread only; elsewhere a plain block)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    except ValueError:  # no signal handling in this interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt
