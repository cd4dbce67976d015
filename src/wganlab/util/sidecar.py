"""Side processes that import the slow libraries while the run starts, and do the end's work.

A one-step run spends more time importing POT (0.8 s) and matplotlib (0.3 s), solving the
exact W1 (0.5 s) and drawing its pictures (0.8 s) than training. None of that needs torch,
so ``wganlab train`` starts two side processes before it imports torch: ``transport`` (POT,
for the exact W1) and ``figures`` (matplotlib, for the report's and TensorBoard's pictures).
They import on the second core while the main process imports torch and trains, and then take
the work: the main process waits for a W1, and gets pictures as they are drawn.

Work is named as ``"module:function"`` (a torch-free function of this package) with picklable
arguments, so this bottom layer imports nothing above it. Where no side process runs (the
Python API, a test, a side process that failed to start or died), ``call``/``submit`` run the
function here: the figures and files are the same either way, only the wall time differs.

Why by hand: ``concurrent.futures.ProcessPoolExecutor`` starts its workers on the first
submit (not ahead), imports the parent's ``__main__`` in spawn mode and cannot pin a job to the
worker that has its library loaded; this is a pipe, pickles and a reader thread.
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection

# "-name": a module the side process must not import (POT's sklearn k-means, which no W1 uses: 0.5 s)
WARM = {"transport": ("-sklearn", "numpy", "ot"), "figures": ("numpy", "matplotlib.pyplot")}
# POT imports torch for its torch backend unless told not to: 1.2 s a side process does not need
_SIDE_ENV = {"POT_BACKEND_DISABLE_PYTORCH": "1", "POT_BACKEND_DISABLE_JAX": "1",
             "POT_BACKEND_DISABLE_TENSORFLOW": "1", "POT_BACKEND_DISABLE_CUPY": "1",
             "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

# scheduling priority below the main process's: the pictures wait for a free core, while the
# main process imports torch and the transport process solves the W1 everyone waits for
NICE = {"figures": 10}
_running: dict[str, "Sidecar"] = {}


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class SidecarGone(RuntimeError):
    """The side process ended before answering (killed, or it could not start)."""


class Sidecar:
    """One side process with ``warm`` modules imported; ``submit`` -> Future of the result."""

    def __init__(self, name: str, warm=()):
        self.name = name
        env = dict(os.environ, **_SIDE_ENV)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["WGANLAB_SIDECAR_NICE"] = str(NICE.get(name, 0))
        code = "from wganlab.util.sidecar import serve; serve()"
        self.process = subprocess.Popen([sys.executable, "-c", code, *warm], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                        start_new_session=True)  # a Ctrl-C is the main process's
        self._send = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._receive = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self._lock = threading.Lock()
        self._pending: dict[int, Future] = {}
        self._next = 0
        self.alive = True
        self._reader = threading.Thread(target=self._read, name=f"wganlab-sidecar-{name}", daemon=True)
        self._reader.start()

    def submit(self, target: str, *args, **kwargs) -> Future:
        future: Future = Future()
        with self._lock:
            if not self.alive:
                future.set_exception(SidecarGone(self.name))
                return future
            job = self._next
            self._next += 1
            self._pending[job] = future
            try:
                self._send.send((job, target, args, kwargs))
            except (OSError, ValueError):
                self._pending.pop(job)
                self.alive = False
                future.set_exception(SidecarGone(self.name))
        return future

    def _read(self) -> None:
        while True:
            try:
                job, ok, value = self._receive.recv()
            except Exception:  # noqa: BLE001 - closed, or an answer that cannot be unpickled here:
                break  # either way the waiting jobs are done in this process instead
            future = self._pending.pop(job, None)
            if future is not None:
                future.set_result(value) if ok else future.set_exception(value)
        with self._lock:
            self.alive = False
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(SidecarGone(self.name))

    def close(self, timeout: float = 5.0) -> None:
        """Ends the process once the jobs sent are answered, and waits for its reader thread
        (one still in ``recv`` when the interpreter ends can abort it), not for its exit."""
        try:
            self._send.close()  # the process reads EOF after its last job and exits
        except OSError:
            pass
        self._reader.join(timeout)  # the process closes its end first: no thread of ours is left in recv
        if self._reader.is_alive():
            self.process.kill()
            self._reader.join()


def start(names=tuple(WARM)) -> None:
    """Starts the named side processes (once); a failure leaves the work to this process."""
    for name in names:
        if name not in _running:
            try:
                _running[name] = Sidecar(name, WARM[name])
            except (OSError, ValueError, TypeError):  # no process to start (e.g. no sys.executable)
                continue
    atexit.register(stop)


def stop() -> None:
    """Ends the side processes after their last answers."""
    while _running:
        _, sidecar = _running.popitem()
        sidecar.close()


def submit(name: str, target: str, *args, **kwargs) -> Future:
    """``target(*args, **kwargs)`` in the side process ``name`` if it runs, else here, as a Future."""
    sidecar = _running.get(name)
    if sidecar is not None and sidecar.alive:
        remote = sidecar.submit(target, *args, **kwargs)
        result: Future = Future()

        def settle(done: Future) -> None:
            error = done.exception()
            if isinstance(error, SidecarGone):  # it died: do the work here instead
                _settle_here(result, target, args, kwargs)
            elif error is not None:
                result.set_exception(error)
            else:
                result.set_result(done.result())

        remote.add_done_callback(settle)
        return result
    local: Future = Future()
    _settle_here(local, target, args, kwargs)
    return local


def _settle_here(future: Future, target: str, args, kwargs) -> None:
    try:
        future.set_result(_resolve(target)(*args, **kwargs))
    except BaseException as error:  # handed to whoever waits on the future
        future.set_exception(error)


def call(name: str, target: str, *args, **kwargs):
    """``target(*args, **kwargs)``, in the side process ``name`` if it runs; its result."""
    return submit(name, target, *args, **kwargs).result()


def serve() -> None:
    """The side process: import the modules named in argv, then answer jobs until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(int(os.environ.get("WGANLAB_SIDECAR_NICE", "0")))
    except (AttributeError, OSError):  # no nice on this platform
        pass
    receive = Connection(os.dup(0), writable=False)
    send = Connection(os.dup(1), readable=False)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # a library's print cannot corrupt the answers
    for module in sys.argv[1:]:
        if module.startswith("-"):
            sys.modules[module[1:]] = None  # its import raises ImportError, which POT handles
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the job that needs it raises the same ImportError, in the main process's words
    while True:
        try:
            job, target, args, kwargs = receive.recv()
        except (EOFError, OSError):
            send.close()  # the main process's reader ends now, without waiting for this exit
            os._exit(0)  # nothing to flush: every answer is sent; skips matplotlib's and POT's teardown
        try:
            answer = (job, True, _resolve(target)(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - handed back to the caller, who re-raises it
            answer = (job, False, error)
        try:
            send.send(answer)
        except Exception:  # noqa: BLE001 - an unpicklable result or error: say so in a picklable one
            send.send((job, False, RuntimeError(f"{target} returned something that cannot be sent back")))
