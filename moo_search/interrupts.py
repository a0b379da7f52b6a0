"""SIGTERM stops a run as Ctrl-C does, in the CLI and in every local worker process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any

__all__ = ["interrupt_on_sigterm"]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _redeliver(previous: Any) -> Any:
    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # the interrupt landed in a finalizer (a weakref callback, a __del__), where Python
            # prints it as "Exception ignored" and drops it: deliver it again, from another
            # thread once this hook has returned, to the running code, without the traceback
            # (RuntimeError: the interpreter is shutting down, so it is stopping anyway)
            with contextlib.suppress(RuntimeError):
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
            return
        previous(unraisable)

    hook.moo_search = True  # type: ignore[attr-defined]
    return hook


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler, ``kill``, a parent stopping its workers) raises KeyboardInterrupt:
    the running trial is marked failed and the exit is clean. An interrupt that lands in a
    finalizer is delivered again rather than printed and lost. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not getattr(sys.unraisablehook, "moo_search", False):
        sys.unraisablehook = _redeliver(sys.unraisablehook)
    signal.signal(signal.SIGTERM, _raise_interrupt)
