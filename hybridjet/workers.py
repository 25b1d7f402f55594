"""What every worker process hybridjet starts does first: die with the process that started it. A parent killed
by SIGTERM or SIGKILL (a batch system's time limit, ``kill``) would otherwise leave its workers training on, into
the run folders the next try writes (Lightning's own SIGTERM handler even keeps a training worker alive)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def die_with_parent(parent_pid: int) -> None:
    """In a worker: be killed when ``parent_pid`` ends (Linux's parent-death signal), and end now if it already
    has. Elsewhere nothing (the workers there end when their pipe to the parent closes)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os._exit(1)


@contextlib.contextmanager
def terminate_as_exit() -> object:
    """In the parent, while workers run: SIGTERM raises ``SystemExit`` (as Ctrl-C raises KeyboardInterrupt), so that
    the code that stops the workers on Ctrl-C also runs on ``kill``. The main thread only; elsewhere it does
    nothing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
