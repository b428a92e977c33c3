"""The studio's server process: the start's checks, a socket on the address asked for, uvicorn
serving :func:`~stylecascade.studio.app.create_app` on it (with the bounds of
:mod:`~stylecascade.studio.limits`) until Ctrl-C, then the jobs stopped."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import DEVICES
from ..errors import UsageError
from ..naming import check_weights_spec
from .app import Studio, create_app
from .guard import is_loopback
from .limits import server_options

if TYPE_CHECKING:
    import uvicorn


def _resolve(host: str) -> None:
    """Check that ``host`` names an address of this machine's resolver.

    Raises:
        UsageError: (``--host``) it does not.
    """
    try:
        socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a host name"
        raise UsageError(f"--host {host!r}: no such address ({reason})") from None


def _check_out_dir(out_dir: Path) -> None:
    """Check that ``out_dir`` is a folder or can become one (its nearest existing parent is a
    writable folder).

    Raises:
        UsageError: (``--out-dir``) a file in the way, or a folder that cannot be written.
    """
    found = Path(out_dir).absolute()
    while not found.exists() and found != found.parent:
        found = found.parent
    if not found.is_dir():
        raise UsageError(f"--out-dir {out_dir}: {found} is a file, not a folder")
    if not os.access(found, os.W_OK | os.X_OK):
        raise UsageError(f"--out-dir {out_dir}: cannot write into {found}")


def check_start(host: str, port: int, out_dir: Path, device: str, weights: str) -> None:
    """Everything ``stylecascade studio`` can check before it serves, in well under a second
    (no torch, no weights read): the port's range, the host's address, the output folder, the
    device's name and the weights' source or file. (Whether the device is present is said by
    the first try that needs it: choosing it imports torch.)

    Raises:
        UsageError: the first bad value, its message starting with the option's flag.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: use 0–65535 (0: any free port)")
    _resolve(host)
    _check_out_dir(out_dir)
    if device not in DEVICES:
        raise UsageError(f"--device {device}: unknown device; choose one of {', '.join(DEVICES)}")
    check_weights_spec(weights)  # the render's own check: a folder or /dev/zero said as such


def exposure_warning(host: str) -> str | None:
    """The one-line warning a bind beyond this machine gets (``None`` on loopback)."""
    if is_loopback(host):
        return None
    return (
        f"warning: the studio listens on {host}: other machines can reach it; only its token "
        f"(in the address below) lets them in, over plain HTTP"
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), ready for the server.

    Raises:
        UsageError: (``--host``) no such address, or not one of this machine's; (``--port``)
            the port is taken or cannot be used.
    """
    _resolve(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or exc
        if getattr(exc, "errno", None) == errno.EADDRNOTAVAIL:  # the address, not the port
            raise UsageError(
                f"--host {host}: not an address of this machine; cannot listen on it ({reason})"
            ) from None
        raise UsageError(f"--port {port}: cannot listen on {host}:{port} ({reason})") from None
    return sock


def server(
    studio: Studio, host: str = "127.0.0.1", allow_origins: tuple[str, ...] = ()
) -> uvicorn.Server:
    """A uvicorn server of the studio's application (:func:`create_app`), quiet but for
    warnings, with the connection bounds of :func:`~stylecascade.studio.limits.server_options`;
    open streams get 1 s to end when it stops.

    Raises:
        UsageError: an ``allow_origins`` value that is no origin.
    """
    import uvicorn

    config = uvicorn.Config(
        create_app(studio, host, allow_origins), log_level="warning", timeout_graceful_shutdown=1,
        **server_options(),
    )  # fmt: skip
    running = uvicorn.Server(config)
    studio.closing = lambda: running.should_exit
    return running


def serve(
    studio: Studio,
    host: str,
    port: int,
    announce: Callable[[str], None],
    allow_origins: tuple[str, ...] = (),
) -> None:
    """Run the studio's server until Ctrl-C; ``announce`` is told its address first, with the
    launch's token (``http://HOST:PORT/?token=…``; a bind beyond loopback is warned about on
    stderr, one line). At the end, the jobs are stopped (a running print saves its checkpoint).

    Raises:
        UsageError: the address cannot be used, or an ``allow_origins`` value is no origin.
    """
    running = server(studio, host, allow_origins)
    sock = listening_socket(host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    warning = exposure_warning(host)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    announce(f"http://{shown}:{sock.getsockname()[1]}/?token={studio.token}")
    try:
        running.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it shut down on again: done
        pass
    finally:
        studio.worker.close()
