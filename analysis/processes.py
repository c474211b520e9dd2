"""Worker processes that die with their parent, and interruptions without tracebacks.

* :func:`worker_initializer` runs first in every worker process of popeval's process pools: the
  kernel kills the worker when its parent dies (``PR_SET_PDEATHSIG``, Linux), however the parent
  dies -- even by ``SIGKILL``, which no handler can catch -- and the worker leaves ``SIGINT`` to its
  parent, which decides what an interruption means.
* :func:`die_with_parent` does the same for any child process (the report's Jupyter kernel), as a
  ``preexec_fn`` of :class:`subprocess.Popen`.
* :func:`handle_interruptions` turns ``SIGINT`` (Ctrl-C) and ``SIGTERM`` in the main process into
  :class:`Interrupted` after stopping the worker processes, so that the command line prints one line
  and exits with 128 + the signal number (130 for Ctrl-C).  A background thread that fails while the
  interruption unwinds (a process pool's manager thread finding its stopped workers) is logged, not
  printed: its traceback would be a second, misleading message.  A worker forked while the signal
  arrives (before :func:`worker_initializer` ran) inherits the handler; there it prints nothing and
  leaves the interruption to the parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "UNWIND_SECONDS",
    "Interrupted",
    "announce",
    "die_with_parent",
    "handle_interruptions",
    "received_signal",
    "stop_workers",
    "worker_initializer",
]

_PR_SET_PDEATHSIG = 1

# the signal that interrupted this process, once one did: code that the interruption unwinds through
# (an event loop, a kernel client) may turn it into another exception, which is still an interruption
_RECEIVED: list[int] = []


def received_signal() -> int | None:
    """The number of the signal that interrupted this process, or None."""
    return _RECEIVED[0] if _RECEIVED else None


class Interrupted(KeyboardInterrupt):
    """The run was interrupted by a signal (``signum``)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a command killed by it."""
        return 128 + self.signum


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process die with its parent, however the parent dies (``PR_SET_PDEATHSIG``, Linux).

    Parameters
    ----------
    parent_pid
        The parent's pid as the parent saw it; when the parent is already gone (it died between
        starting this process and this call), this process exits at once.

    Notes
    -----
    Safe as the ``preexec_fn`` of :class:`subprocess.Popen` (``functools.partial(die_with_parent,
    os.getpid())``): it only calls ``prctl`` and ``getppid``.  Elsewhere than on Linux it only checks
    the parent.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def worker_initializer(parent_pid: int | None = None) -> None:
    """Make this (worker) process die with its parent and ignore Ctrl-C.

    Parameters
    ----------
    parent_pid
        The parent's pid as the parent saw it (see :func:`die_with_parent`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (see handle_interruptions)
    die_with_parent(parent_pid)


def stop_workers() -> None:
    """Kill the worker processes this process started (``multiprocessing`` children)."""
    import multiprocessing

    for child in multiprocessing.active_children():
        with contextlib.suppress(OSError, AttributeError, ValueError):
            child.kill()


#: Seconds the main process may take to unwind after an interruption before it is ended anyway
#: (a process pool whose workers were stopped can block its own shutdown).
UNWIND_SECONDS = 5.0
_announced = False


def announce(line: str) -> None:
    """Print the one line that reports an interruption (once, whoever gets there first)."""
    global _announced
    if not _announced:
        _announced = True
        print(line, file=sys.stderr, flush=True)


def _watchdog(signum: int, line: str) -> None:
    import threading

    def end() -> None:
        announce(line)
        os._exit(128 + signum)

    t = threading.Timer(UNWIND_SECONDS, end)
    t.daemon = True
    t.start()


@contextlib.contextmanager
def handle_interruptions(line: str = "interrupted") -> Iterator[None]:
    """While active, ``SIGINT`` and ``SIGTERM`` stop the workers and raise :class:`Interrupted`.

    The interruption is logged (``analysis.pipeline``: the run log, when a run is under way) before the
    main process unwinds; if unwinding takes longer than :data:`UNWIND_SECONDS`, the process prints
    ``line`` and ends with 128 + the signal number.  Every output is written atomically, so ending
    early never leaves a file that looks complete.
    """

    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        import logging

        if os.getpid() != owner:
            # a worker forked from this process, hit before its initializer replaced this handler (a
            # signal to the process group while the pool starts a worker): the parent handles the
            # interruption and stops its workers, so the worker prints nothing -- it ignores Ctrl-C
            # and ends by SIGTERM as if no handler were installed
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if signum == signal.SIGTERM:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)
            return
        # a second signal while unwinding is ignored: the first one is already being handled
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _RECEIVED.append(signum)
        logging.getLogger(__name__).error("run interrupted by %s", signal.Signals(signum).name)
        stop_workers()
        _watchdog(signum, f"{line} ({signal.Signals(signum).name})")
        raise Interrupted(signum)

    import threading

    previous_hook = threading.excepthook

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if not _RECEIVED:
            previous_hook(args)
            return
        # e.g. CPython 3.11's process-pool manager thread setting an exception on a future that the
        # interruption already cancelled (InvalidStateError): an effect of the interruption, not a fault
        import logging

        name = args.thread.name if args.thread is not None else "?"
        logging.getLogger(__name__).debug("thread %s ended during the interruption: %s: %s", name, args.exc_type.__name__, args.exc_value)

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, handler)
    threading.excepthook = thread_hook
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if not _RECEIVED:  # after an interruption, threads may still be unwinding: keep the hook
            threading.excepthook = previous_hook
