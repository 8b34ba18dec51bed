"""Slow clients shut nobody out: ``serve api`` in a subprocess, clients that trickle their headers or
bodies one byte at a time, and a legitimate request answered meanwhile.

A request must be in whole (headers and body) within ``--read-timeout`` of its first byte, else 408;
one address holds at most ``--max-client-connections`` connections (the next gets 429); and only
complete requests take a place in the ``--max-pending`` queue. Sources 127.0.0.2 / .3 are loopback
addresses other than the legitimate client's 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from affectfusion.serve import Predictor
from affectfusion.serve.api import create_app
from tests.dashboard_helpers import free_port
from tests.helpers import asgi_scope

READ_TIMEOUT = 2.0
BODY = json.dumps({"items": [{"features": {"text": [0.1] * 8}}]}).encode()


@pytest.fixture(scope="module")
def server(trained_features_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("slow") / "server.log"
    cmd = [
        *(sys.executable, "-m", "affectfusion.cli", "serve", "api", str(trained_features_run)),
        *("--port", str(port), "--log-level", "warning", "--max-pending", "4"),
        *("--read-timeout", str(READ_TIMEOUT), "--max-client-connections", "8"),
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve api did not start:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def trickle(port: int, source: str, head: bytes, body: bytes, connected: threading.Barrier) -> tuple[str, float]:
    """Send ``head`` at once, then ``body`` one byte every 0.3 s until the server answers: (status line, seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as s:
        start = time.monotonic()
        connected.wait(10)
        s.sendall(head)
        for byte in body:
            if select.select([s], [], [], 0.3)[0]:
                break  # the server answered (and closes)
            try:
                s.send(bytes([byte]))
            except OSError:
                break
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer.split(b"\r\n", 1)[0].decode(), time.monotonic() - start


def test_trickling_clients_are_cut_and_a_real_request_is_answered(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    start_line = b"POST /predict/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    full_head = start_line + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    connected = threading.Barrier(17)
    with ThreadPoolExecutor(16) as pool:
        bodies = [pool.submit(trickle, port, "127.0.0.2", full_head, BODY, connected) for _ in range(8)]
        heads = [pool.submit(trickle, port, "127.0.0.3", b"", full_head + BODY, connected) for _ in range(8)]
        connected.wait(10)
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0)) as extra:
            assert extra.recv(65536).startswith(b"HTTP/1.1 429"), "a 9th connection from one address"
        began = time.monotonic()
        r = httpx.post(
            f"{server}/predict/batch", content=BODY, headers={"content-type": "application/json"}, timeout=30
        )
        answered = time.monotonic() - began
        assert r.status_code == 200, r.text
        assert answered < 5, answered
        for job in bodies + heads:
            status, seconds = job.result(60)
            assert status.startswith("HTTP/1.1 408"), status
            assert seconds < READ_TIMEOUT + 5, seconds
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200


# -- the same guarantees in the app itself (any ASGI server) ------------------------------------------


async def status_of(app: Any, receive: Any) -> int:
    """One JSON batch request driven through the app by hand: its response's status."""
    out: list[dict] = []

    async def send(message: dict) -> None:
        out.append(message)

    await app(asgi_scope("/predict/batch", b"application/json"), receive, send)
    return next(m for m in out if m["type"] == "http.response.start")["status"]


async def trickling() -> dict:
    """A client that sends one byte every 0.05 s, forever: never silent long enough for the idle timeout."""
    await asyncio.sleep(0.05)
    return {"type": "http.request", "body": b" ", "more_body": True}


def test_a_client_that_never_pauses_long_is_cut_at_the_read_timeout(trained_features_run: Path) -> None:
    app = create_app(Predictor.load(trained_features_run), idle_timeout_s=5, read_timeout_s=0.5)
    start = time.monotonic()
    assert asyncio.run(asyncio.wait_for(status_of(app, trickling), 30)) == 408
    assert time.monotonic() - start < 3


def test_a_trickling_body_takes_no_place_in_the_queue(trained_features_run: Path) -> None:
    """The one place in the queue (max_pending=1) is not taken by a client still sending its body."""
    app = create_app(Predictor.load(trained_features_run), max_pending=1, read_timeout_s=2)

    async def complete() -> dict:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def both() -> tuple[int, int]:
        slow = asyncio.create_task(status_of(app, trickling))
        await asyncio.sleep(0.3)
        return await status_of(app, complete), await slow

    assert asyncio.run(asyncio.wait_for(both(), 30)) == (200, 408)
