"""What bounds one client's connections before a request reaches the app: a deadline for its headers, a cap per address.

uvicorn's h11 protocol waits for a request's headers without a time limit (its keep-alive timeout
only covers the silence *after* a response), so a client that sends one byte every few seconds
holds its connection forever, and a client may open any number of them. :func:`guarded_protocol`
makes the protocol class ``serve api`` runs uvicorn with:

- the headers of each request must arrive within ``read_timeout_s`` of its first byte (of the
  connection, for the first request), else 408 and the connection is closed; the time it started is
  passed on in the scope (``extensions["affectfusion.read_started"]``) so the app's middleware
  (:class:`~affectfusion.serve.api.limits.RequestLimits`) bounds headers and body together;
- at most ``max_per_client`` connections are open from one client address at a time; the next one
  gets 429 with ``Retry-After`` and is closed without being read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from affectfusion.serve.api.limits import READ_STARTED, RETRY_AFTER_S


def raw_response(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete JSON error response that closes the connection, for a request the app never saw."""
    body = json.dumps({"detail": detail}).encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def guarded_protocol(read_timeout_s: float, max_per_client: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for each request's headers and a cap on connections per address."""
    if read_timeout_s <= 0 or max_per_client < 1:
        raise ValueError("read_timeout_s must be > 0 and max_per_client >= 1")
    open_per_client: Counter[str] = Counter()  # one event loop: no lock needed

    class GuardedH11Protocol(H11Protocol):
        address = ""
        read_started = 0.0
        read_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.address = self.client[0] if self.client else ""
            open_per_client[self.address] += 1
            if open_per_client[self.address] > max_per_client:
                detail = (
                    f"too many connections from {self.address} (at most {max_per_client} at once); "
                    f"retry in {RETRY_AFTER_S} s"
                )
                self._refuse(429, "Too Many Requests", detail, {"retry-after": str(RETRY_AFTER_S)})
                return
            self._start_reading()

        def data_received(self, data: bytes) -> None:
            if self._between_requests() and self.read_timer is None:
                self._start_reading()  # the first byte of the next request on a kept-alive connection
            super().data_received(data)
            if not self._between_requests() and self.read_timer is not None:
                # Headers complete: the app's middleware holds the same deadline for the body.
                self.scope.setdefault("extensions", {})[READ_STARTED] = self.read_started  # type: ignore[assignment]  # ASGI types extensions as dicts; ours is a float
                self._stop_reading()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_reading()
            open_per_client[self.address] -= 1
            if open_per_client[self.address] <= 0:
                del open_per_client[self.address]
            super().connection_lost(exc)

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _start_reading(self) -> None:
            self.read_started = time.monotonic()
            self.read_timer = self.loop.call_later(read_timeout_s, self._read_expired)

        def _stop_reading(self) -> None:
            if self.read_timer is not None:
                self.read_timer.cancel()
                self.read_timer = None

        def _read_expired(self) -> None:
            self.read_timer = None
            if self._between_requests() and not self.transport.is_closing():
                detail = f"the request's headers did not arrive within {read_timeout_s:g} s (--read-timeout)"
                self._refuse(408, "Request Timeout", detail)

        def _refuse(self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> None:
            self._stop_reading()
            self.transport.write(raw_response(status, reason, detail, headers))
            self.transport.close()

    return GuardedH11Protocol
