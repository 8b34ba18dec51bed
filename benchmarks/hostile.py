"""The "held" column of ``benchmarks/serve.py``: hostile inputs of issue 12 against a running server.

Each case is sent once while ``/health`` is polled every 50 ms and the server's RSS is sampled every
20 ms. It *held* when it got a 4xx, ``/health`` answered every poll within 0.5 s, and the server's
peak RSS stayed under 1.5x its idle RSS plus one model-sized input (the largest decoded input the
limits admit: ``max_image_pixels`` RGB bytes).

Cases: a FLAC of 10 minutes of 8-channel 48 kHz silence (~200 KB on the wire), a 13000x13000 PNG
(~160 KB), a 100 MB JSON body to ``/predict/batch``, and a JSON body just under ``max_json_mb``
(parsed in full: the most JSON work a request may cause).
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HEALTH_BUDGET_S = 0.5


def flac_bomb() -> bytes:
    import soundfile as sf

    with tempfile.NamedTemporaryFile(suffix=".flac") as f:
        block = np.zeros((480_000, 8), dtype=np.int16)
        with sf.SoundFile(f.name, "w", 48_000, 8, "PCM_16", format="FLAC") as out:
            for _ in range(60):
                out.write(block)
        return Path(f.name).read_bytes()


def png_bomb(side: int = 13_000) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def json_body(mb: float, info: dict[str, Any]) -> bytes:
    """A batch of about ``mb`` MB: texts if the model reads text, else feature rows of its first modality."""
    if "text" in info["inputs"]:
        item: dict[str, Any] = {"text": "word " * 200}
    else:
        m, spec = next(iter(info["modalities"].items()))
        item = {"features": {m: [0.25] * int(spec["dim"])}}
    one = len(json.dumps(item)) + 2
    return json.dumps({"items": [item] * max(1, int(mb * 2**20 / one))}).encode()


def run_case(url: str, rss: Callable[[], float | None], send: Callable[[httpx.Client], httpx.Response]) -> dict:
    """Send one hostile request; meanwhile poll /health and sample RSS."""
    result: dict[str, Any] = {}
    done = threading.Event()
    peak = [rss() or 0.0]

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss() or 0.0)

    def attack() -> None:
        with httpx.Client(base_url=url, timeout=300) as c:
            start = time.perf_counter()
            try:
                r = send(c)
                result.update(status=r.status_code, detail=str(r.json().get("detail", ""))[:160])
            except (httpx.HTTPError, ValueError) as e:
                result.update(status=0, detail=f"{type(e).__name__}: {e}")
            result["seconds"] = time.perf_counter() - start
        done.set()

    threading.Thread(target=sample, daemon=True).start()
    worker = threading.Thread(target=attack)
    worker.start()
    health: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        while not done.is_set():
            start = time.perf_counter()
            c.get("/health")
            health.append(time.perf_counter() - start)
            time.sleep(0.05)
    worker.join()
    result.update(health_max_s=max(health) if health else 0.0, health_polls=len(health), peak_rss_mib=peak[0])
    return result


def held(url: str, rss: Callable[[], float | None], info: dict[str, Any]) -> list[dict[str, Any]]:
    """Every hostile case the served model can be sent, with whether it held."""
    idle = rss() or 0.0
    limits = info["limits"]["inputs"]
    budget = 1.5 * idle + limits["max_image_pixels"] * 3 / 2**20
    cases: dict[str, Callable[[httpx.Client], httpx.Response]] = {}
    fields = info["fields"]
    if "audio" in fields:
        flac = flac_bomb()
        cases[f"FLAC 10 min x 8 ch ({len(flac) // 1024} KB)"] = lambda c: c.post(
            "/predict", files={"audio": ("b.flac", flac, "audio/flac")}
        )
    if "image" in fields:
        png = png_bomb()
        cases[f"PNG 13000x13000 ({len(png) // 1024} KB)"] = lambda c: c.post(
            "/predict", files={"image": ("b.png", png, "image/png")}
        )
    big = json_body(100, info)
    cases[f"JSON {len(big) / 2**20:.0f} MB"] = lambda c: c.post(
        "/predict/batch", content=big, headers={"content-type": "application/json"}
    )
    near = json_body(limits["max_json_mb"] * 0.95, info)
    cases[f"JSON {len(near) / 2**20:.1f} MB (under the limit)"] = lambda c: c.post(
        "/predict/batch", content=near, headers={"content-type": "application/json"}
    )
    out = []
    for name, send in cases.items():
        r = run_case(url, rss, send)
        expected_4xx = "under the limit" not in name
        ok_status = 400 <= r["status"] < 500 if expected_4xx else r["status"] in (200, 413)
        r.update(
            case=name,
            idle_rss_mib=idle,
            rss_budget_mib=budget,
            held=bool(ok_status and r["health_max_s"] < HEALTH_BUDGET_S and r["peak_rss_mib"] < budget),
        )
        out.append(r)
    return out
