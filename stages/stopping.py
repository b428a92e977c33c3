"""A stop handle: end a running cascade from any thread, the way Ctrl-C ends it in the main one.

Signals reach only the main thread (``stylecascade.interrupt``); a render running in a worker
thread (a web server's, a notebook's) is stopped through a :class:`StopHandle` instead. The
cascade checks the handle between evaluations; once it is set, the stage ends as an
interrupted one does (``stages.cascade.StageInterrupted`` with its best iterate so far), its
``stopped`` flag telling the two apart.
"""

from __future__ import annotations

import threading


class Stopped(KeyboardInterrupt):
    """Raised inside a stage when its :class:`StopHandle` is set. A ``KeyboardInterrupt``, so
    that everything that handles Ctrl-C during a stage (keeping the best iterate, saving a
    checkpoint) handles a stop alike."""


class StopHandle:
    """Asks a render to stop; thread-safe (a :class:`threading.Event`), set once, never reset.

    >>> stop = StopHandle()
    >>> # in another thread: render(..., stop=stop); here, later:
    >>> stop.stop()
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        """Ask the render to stop at its next evaluation (callable from any thread, any
        number of times)."""
        self._event.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Stopped` if :meth:`stop` was called (the cascade calls this between
        evaluations).

        Raises:
            Stopped: the handle is set.
        """
        if self._event.is_set():
            raise Stopped("stopped")
