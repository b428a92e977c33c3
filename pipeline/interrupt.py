"""SIGINT and SIGTERM become an exception the stage runner turns into a checkpoint."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import StyleCascadeError

SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""Shell convention: 128 + the signal number."""


class Signalled(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupted(StyleCascadeError):
    """A render stopped by a signal after saving its checkpoint; exits with 128 + the signal."""

    def __init__(self, message: str, signum: int, *arguments: str) -> None:
        super().__init__(message, *arguments)
        self.exit_code = SIGNAL_EXIT_CODES.get(signum, 130)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM raises :class:`Signalled`; later ones are
    ignored, so that saving the checkpoint is not cut short. Handlers are restored on exit.
    Outside the main thread (where Python cannot install handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        for sig in SIGNAL_EXIT_CODES:
            signal.signal(sig, signal.SIG_IGN)
        raise Signalled(signum)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNAL_EXIT_CODES}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM until the block ends, so that writes that belong together (an
    image and its manifest) are never cut in two. Yields the list of the signals that arrived
    meanwhile, for the caller to act on after the block. Outside the main thread this does
    nothing (no handler can be installed there)."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {sig: signal.signal(sig, lambda n, _f: held.append(n)) for sig in SIGNAL_EXIT_CODES}
    try:
        yield held
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
