"""SIGTERM stops a run as Ctrl-C does, in the CLI and in every local worker process; a
process told to stop from another thread is stopped for certain (:func:`stop_for_certain`)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "defer_interrupts",
    "dump_stacks_on_sigusr1",
    "interrupt_on_sigterm",
    "interrupted",
    "interruptible",
    "interrupts_deferred",
    "pause",
    "resume_interrupts",
    "stop_for_certain",
]

HARD_EXIT_CODE = 130  # as Ctrl-C: the run was stopped, not failed


class _Deferral:
    """While ``depth`` > 0 an interrupt is held (``pending``) instead of raised."""

    depth = 0
    pending = False
    once = False  # a worker: one interrupt stops it; more could cut its clean-up short
    raised = False


def _raise_interrupt(signum: int, frame: object) -> None:
    if _Deferral.once and _Deferral.raised:
        return  # already stopping (a swallowed one is ended by stop_for_certain or its parent)
    if _Deferral.depth:
        _Deferral.pending = True
        return
    _raise_now()


def _raise_now() -> None:
    _Deferral.pending = False
    _Deferral.raised = True
    raise KeyboardInterrupt


def interrupted() -> bool:
    """Whether this process has raised an interrupt (it is stopping)."""
    return _Deferral.raised


def dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 PID`` prints every thread's stack to stderr: where a run that seems stuck
    is (Python's faulthandler; not on Windows)."""
    import faulthandler

    if hasattr(signal, "SIGUSR1"):
        with contextlib.suppress(ValueError, RuntimeError, OSError):  # (no real stderr)
            faulthandler.register(signal.SIGUSR1, all_threads=True)


def defer_interrupts() -> None:
    """Hold Ctrl-C and SIGTERM (once :func:`interrupt_on_sigterm` is installed) until
    :func:`resume_interrupts`, except inside :func:`interruptible` blocks. Drivers hold them
    around everything but the evaluation itself and their waits: an interrupt that lands
    inside a storage call (SQLAlchemy cleans up only on ``Exception``) can leave a
    connection holding a database lock, or a RUNNING trial nobody can name."""
    _Deferral.depth += 1


def resume_interrupts() -> None:
    """End one :func:`defer_interrupts`; at the outermost, raise the interrupt held meanwhile."""
    _Deferral.depth = max(0, _Deferral.depth - 1)
    if not _Deferral.depth and _Deferral.pending:
        _raise_now()


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """A block where interrupts land even while they are held (a trial's own work, a wait):
    one held meanwhile is raised on entry."""
    saved = _Deferral.depth
    _Deferral.depth = 0
    try:
        if _Deferral.pending:
            _raise_now()
        yield
    finally:
        _Deferral.depth = saved


def pause(seconds: float) -> None:
    """``time.sleep`` that an interrupt may end, even while interrupts are held."""
    with interruptible():
        time.sleep(seconds)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """:func:`defer_interrupts` for a block; the held interrupt is raised at its end."""
    defer_interrupts()
    try:
        yield
    finally:
        resume_interrupts()


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


def interrupt_on_sigterm(*, once: bool = False) -> None:
    """SIGTERM (a scheduler, ``kill``, a parent stopping its workers) raises KeyboardInterrupt:
    the running trial is marked failed and the exit is clean. An interrupt that lands in a
    finalizer is delivered again rather than printed and lost; one that lands while
    interrupts are deferred (:func:`defer_interrupts`) is raised when they resume. Ctrl-C
    (SIGINT) takes the same handler. ``once`` (a worker process): only the first interrupt is
    raised, so a stopping worker closes its trial undisturbed. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    _Deferral.once = once
    if not getattr(sys.unraisablehook, "moo_search", False):
        sys.unraisablehook = _redeliver(sys.unraisablehook)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)


def stop_for_certain(
    *,
    grace: float = 5.0,
    last_words: Callable[[], None] | None = None,
    last_words_timeout: float = 3.0,
) -> None:
    """Stop this process from a watcher thread: interrupt the main thread as Ctrl-C does, and
    if it is still running after ``grace`` seconds, call ``last_words`` (e.g. mark its trial
    failed; given at most ``last_words_timeout`` seconds) and exit at once.

    The interrupt may not stop it: one that lands in library code catching
    ``BaseException`` (SQLAlchemy's session clean-up does) is swallowed without a trace, and
    the main thread may sit in a long C call. Returns only if the process is already exiting
    (the watcher is a daemon thread and dies with it).
    """
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(grace)
    with contextlib.suppress(Exception):  # where it was, for whoever reads the log
        import faulthandler

        print(
            f"moo-search: process {os.getpid()} did not stop {grace:g} s after an interrupt; "
            "ending it. Its threads were at:",
            file=sys.stderr,
            flush=True,
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    if last_words is not None:

        def speak() -> None:
            with contextlib.suppress(Exception):
                last_words()

        words = threading.Thread(target=speak, name="moo-search-last-words", daemon=True)
        words.start()
        words.join(last_words_timeout)
    sys.stderr.flush()
    os._exit(HARD_EXIT_CODE)
