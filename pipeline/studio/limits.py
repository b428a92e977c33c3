"""The studio's bounds on what a client can make it hold: request bodies read while they stream,
uploads at once, and connections that send a request too slowly or never finish it.

The bounds on jobs and events are kept with them (:data:`~stylecascade.studio.jobs.MAX_QUEUED`,
:data:`~stylecascade.studio.jobs.MAX_KEPT`, :data:`~stylecascade.studio.jobs.MAX_EVENTS`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from fastapi import HTTPException, Request
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_UPLOAD = 256 << 20
"""Largest request body (an upload or a mask) in bytes: refused as soon as more arrives."""
MAX_UPLOADS_AT_ONCE = 2
"""Uploads read at the same time; one more is answered 429 (with the body bound: ≤ 512 MiB)."""
REQUEST_SECONDS = 60.0
"""Seconds a client has to send a whole request (headers and body) once it began; then the
connection is closed."""
KEEP_ALIVE_SECONDS = 5
"""Seconds an idle kept-alive connection stays open (uvicorn's ``timeout_keep_alive``)."""
MAX_HEADER_BYTES = 16 << 10
"""Largest request head (h11's ``max_incomplete_event_size``): a larger one is a 400."""
MAX_CONNECTIONS = 64
"""Connections and requests at once (uvicorn's ``limit_concurrency``); more are answered 503."""

_uploading = 0


async def bounded_body(request: Request, limit: int | None = None) -> bytes:
    """The request's body, read as it streams and refused once it passes ``limit`` bytes
    (default :data:`MAX_UPLOAD`), without reading the rest.

    Raises:
        HTTPException: 413, a body (declared or sent) over the limit; 429, already
            :data:`MAX_UPLOADS_AT_ONCE` uploads being read.
    """
    global _uploading
    limit = MAX_UPLOAD if limit is None else limit
    too_large = HTTPException(413, f"upload over {limit >> 20} MiB; use a smaller file")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    if _uploading >= MAX_UPLOADS_AT_ONCE:
        raise HTTPException(429, f"{_uploading} uploads are being read; try again when they end")
    _uploading += 1
    try:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        _uploading -= 1


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on receiving a request: from a request's
    first byte, the client has :data:`REQUEST_SECONDS` to send all of it (uvicorn itself
    waits for ever on a half-sent request; idle connections between requests end after
    :data:`KEEP_ALIVE_SECONDS` as before)."""

    _deadline: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        """Feed uvicorn, then start the deadline while a request is incomplete, end it once
        the request is whole."""
        super().data_received(data)
        receiving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and (
            self.conn.their_state is h11.SEND_BODY or self.conn.trailing_data[0]
        )
        if receiving and self._deadline is None:
            self._deadline = self.loop.call_later(REQUEST_SECONDS, self._too_slow)
        elif not receiving:
            self._stop_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """End the deadline with the connection."""
        self._stop_deadline()
        super().connection_lost(exc)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        """Close a connection whose request did not arrive in time."""
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def server_options() -> dict[str, Any]:
    """The uvicorn settings of these bounds (``uvicorn.Config`` keyword arguments)."""
    return {
        "http": BoundedH11Protocol,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "limit_concurrency": MAX_CONNECTIONS,
    }
