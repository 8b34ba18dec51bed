"""Is a server's port free? Asked before anything slow loads, so a port in use is one line at once,
not a bind error from the web server after the model has loaded."""

from __future__ import annotations

import errno
import socket

from affectfusion.errors import AffectFusionError


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` and let go; an error naming the port and ``--port`` if that fails.

    ``SO_REUSEADDR`` as uvicorn and Streamlit set it: a port a stopped server left in TIME_WAIT is free
    for them, and so here; a port another server listens on is not.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise AffectFusionError(
                    f"port {port} on {host} is in use by another program; choose another --port "
                    f"(e.g. --port {port + 1 if port < 65535 else 8000})"
                ) from None
            raise AffectFusionError(f"cannot serve on {host}:{port} ({e.strerror}); check --host and --port") from None
