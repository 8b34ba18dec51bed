"""What bounds one request's cost in the API: body size, slow clients, queue length, waiting time.

- :class:`RequestLimits` (ASGI middleware): a body over the limit is refused with 413 without
  reading past it (a declared ``Content-Length`` before reading anything; JSON batch bodies have
  their own, smaller limit); a client that sends nothing for ``idle_timeout_s``, or has not sent
  its whole request (headers and body) within ``read_timeout_s`` of its first byte, is cut off with
  408; and at most ``max_pending`` *complete* prediction requests are admitted (queued or
  running): the next one gets 503 with ``Retry-After`` once its body is in, so clients that trickle
  their bodies hold no place in the queue.
- :class:`Gate`: the model lock and the bound on concurrent decodes, each waited for at most
  ``request_timeout_s`` (then 503 with ``Retry-After``). The model lock is :class:`FairLock`,
  taken in arrival order, so a batch that releases it between items lets waiting requests in.

The headers' deadline and the cap on connections per client address are the server's (uvicorn's
protocol, :mod:`affectfusion.serve.api.connections`): the app sees a request only once its headers
are in.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from affectfusion.inputs import MB
from affectfusion.serve.input_limits import InputRejected

RETRY_AFTER_S = 1
CLOSE = {"Connection": "close"}
READ_STARTED = "affectfusion.read_started"  # scope extension set by the server: time.monotonic() at the first byte


class ServerBusy(InputRejected):
    """503: the queue is full or the model stayed busy too long; the client should retry later."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)
        self.headers = {"Retry-After": str(RETRY_AFTER_S)}


class RequestLimits:
    """ASGI middleware: body size per path, idle and whole-request timeouts, admission of complete requests."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        path_max_bytes: Mapping[str, int],
        idle_timeout_s: float,
        max_pending: int,
        read_timeout_s: float,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_max_bytes = dict(path_max_bytes)
        self.idle_timeout_s = idle_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_pending = max_pending
        self.pending = 0  # touched only on the event loop: no lock needed

    def message(self, limit: int, path: str) -> str:
        what = "the JSON body limit (max_json_mb)" if path in self.path_max_bytes else "limit"
        return (
            f"request body is over the {limit / MB:g} MB {what}; "
            "send fewer or smaller items (see GET /info for the limits)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.path_max_bytes.get(path, self.max_bytes)
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b""))
        except ValueError:
            declared = None
        if declared is not None and declared > limit:
            # Connection: close -- the server drops the connection instead of reading the unwanted body.
            refused = JSONResponse({"detail": self.message(limit, path)}, 413, headers=CLOSE)
            await refused(scope, receive, send)
            return
        predicting = scope.get("method") == "POST" and path.startswith("/predict")
        deadline = (scope.get("extensions") or {}).get(READ_STARTED, time.monotonic()) + self.read_timeout_s
        received = 0
        admitted = False

        async def limited_receive() -> Message:
            nonlocal received, admitted
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(self.idle_timeout_s, left)))
            except TimeoutError:
                if left <= self.idle_timeout_s:
                    late = f"the request was not received within {self.read_timeout_s:g} s (read timeout)"
                    raise HTTPException(408, late, headers=CLOSE) from None
                raise HTTPException(408, f"no data from the client for {self.idle_timeout_s:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, self.message(limit, path), headers=CLOSE)
                if predicting and not admitted and not message.get("more_body", False):
                    if self.pending >= self.max_pending:
                        busy = f"the server is busy ({self.pending} requests queued); retry in {RETRY_AFTER_S} s"
                        raise HTTPException(503, busy, headers={"Retry-After": str(RETRY_AFTER_S)})
                    self.pending += 1
                    admitted = True
            return message

        try:
            await self.app(scope, limited_receive, send)
        finally:
            if admitted:
                self.pending -= 1


class FairLock:
    """A lock granted in arrival order (a released ``threading.Lock`` usually goes back to its releaser)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False

    def acquire(self, timeout: float = -1) -> bool:
        me = object()
        with self._cond:
            self._waiting.append(me)
            granted = self._cond.wait_for(
                lambda: not self._held and self._waiting[0] is me, None if timeout < 0 else timeout
            )
            self._waiting.remove(me)
            if granted:
                self._held = True
            else:
                self._cond.notify_all()  # the next in line may be free to go now
            return granted

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


class Gate:
    """The model lock (the predictor is not thread-safe) and a bound on concurrent decodes."""

    def __init__(self, max_decodes: int, timeout_s: float) -> None:
        self.model = FairLock()
        self.decodes = threading.BoundedSemaphore(max_decodes)
        self.timeout_s = timeout_s

    @contextmanager
    def _hold(self, lock: FairLock | threading.BoundedSemaphore, what: str) -> Iterator[None]:
        if not lock.acquire(timeout=self.timeout_s):
            raise ServerBusy(f"waited {self.timeout_s:g} s for {what}; retry in {RETRY_AFTER_S} s")
        try:
            yield
        finally:
            lock.release()

    def decoding(self) -> AbstractContextManager[None]:
        return self._hold(self.decodes, "a free decoder")

    def predicting(self) -> AbstractContextManager[None]:
        return self._hold(self.model, "the model")
