"""The studio's server process: a socket on the address asked for, uvicorn serving
:func:`~stylecascade.studio.app.create_app` on it until Ctrl-C, then the jobs stopped."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError
from .app import Studio, create_app

if TYPE_CHECKING:
    import uvicorn


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), ready for the server.

    Raises:
        UsageError: (``--port``) the address is taken or cannot be used.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})"
        ) from None
    return sock


def server(studio: Studio, host: str = "127.0.0.1") -> uvicorn.Server:
    """A uvicorn server of the studio's application (:func:`create_app`), quiet but for
    warnings; open streams get 1 s to end when it stops."""
    import uvicorn

    config = uvicorn.Config(
        create_app(studio, host), log_level="warning", timeout_graceful_shutdown=1
    )
    running = uvicorn.Server(config)
    studio.closing = lambda: running.should_exit
    return running


def serve(studio: Studio, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Run the studio's server until Ctrl-C; ``announce`` is told its address first. At the
    end, the jobs are stopped (a running print saves its checkpoint).

    Raises:
        UsageError: the address cannot be used.
    """
    sock = listening_socket(host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    announce(f"http://{shown}:{sock.getsockname()[1]}/")
    try:
        server(studio, host).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it shut down on again: done
        pass
    finally:
        studio.worker.close()
