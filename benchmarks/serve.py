"""REST API under load on loopback: latency p50/p95/p99 and throughput per input shape, 8 and 32 clients.

    .venv/bin/python benchmarks/serve.py [--requests N] [--concurrency 8,32] [--quick] [--run RUN] [--threads N]

Self-contained by default: makes the raw text + wav + image fixture dataset of the serving tests
(``tests/fixtures_media.py``: 0.5 s tones, 64x64 images, short sentences), trains its config
(lexicon text, MFCC audio, FER-CNN image, weighted fusion) in a temporary folder, and serves it
with ``affectfusion serve api`` in a subprocess on a free 127.0.0.1 port. ``--run`` serves an
existing run instead (scenarios for inputs it does not take are skipped; the inputs are still the
fixture files).

For each scenario (``text+audio+image``, ``text``, ``audio``, ``image``: one ``POST /predict``
multipart request per input, inputs rotating over the fixture rows that have all three) and each
client count, ``--requests`` requests are sent by that many threads, each with its own keep-alive
``httpx`` client, after a short warm-up. Reported: latency percentiles (client-side, request start
to parsed response), requests per second (completed requests / wall time), status counts (any 5xx
is a failure of the benchmark), the server's peak RSS (``VmHWM`` of ``/proc/<pid>/status``; psutil
RSS sampling elsewhere) and RSS after each scenario, the time from starting the server process to
a healthy ``/health`` (interpreter, imports, model and extractors, uvicorn), the Predictor's own
load time, and the latency of the first (cold) request, which pays for lazy imports and JIT
compilation in the extractors. Finally it checks that an oversized upload, a wrong content type, a corrupt image and an
empty text are refused with a 4xx and a message, and that no upload temp folder is left behind.
Then the hostile cases of issue 12 (``hostile.py``: a FLAC of long 8-channel silence, a pixel bomb,
a 100 MB JSON body, a JSON body just under the limit) each run once, as the "held" table: status,
the slowest ``/health`` answer while it ran, and the server's peak RSS against 1.5x idle plus one
model-sized input.

The clients run on the same machine as the server (2 cores here): their CPU use competes with the
server's, so throughput is a lower bound of what the server alone could do. The server predicts one
request at a time (the Predictor is behind a lock), so 8 clients raise throughput only by
overlapping network, parsing and upload handling with prediction. Timings depend on other load on
the machine; the load average at start is saved with the results.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from common import environment  # benchmarks/ is on sys.path when a script runs
from hostile import held

from affectfusion.io import write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "serve.json"
SCENARIOS: dict[str, tuple[str, ...]] = {
    "text+audio+image": ("text", "audio", "image"),
    "text": ("text",),
    "audio": ("audio",),
    "image": ("image",),
}
CONTENT_TYPES = {"audio": "audio/wav", "image": "image/png"}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="REST API latency, throughput and memory on loopback")
    p.add_argument("--requests", type=int, default=2000, help="measured requests per scenario and client count")
    p.add_argument("--concurrency", default="8,32", help="comma-separated client counts (default 8,32)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--quick", action="store_true", help="100 requests per cell (a smoke run)")
    p.add_argument("--run", type=Path, help="serve this run directory instead of training the fixture config")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads of the server (default 1)")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured requests before each cell")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 100)
    unknown = [s for s in args.scenarios.split(",") if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    return args


# -- setup: data, run, server -------------------------------------------------------------------------


def prepare(base: Path, run: Path | None) -> tuple[Path, Path, float | None]:
    """The fixture dataset, and the run to serve (trained here unless given) with its training seconds."""
    sys.path.insert(0, str(REPO_ROOT))  # the fixture generator lives with the tests
    from rich.console import Console

    from affectfusion.config import validate
    from affectfusion.training.trainer import Trainer
    from tests.fixtures_media import make_media_table, media_config

    data = make_media_table(base / "data")
    if run is not None:
        return data, run.expanduser().resolve(), None
    cfg = validate(media_config(data, base / "cache"))
    start = time.perf_counter()
    Trainer(cfg, base / "run", console=Console(stderr=True, quiet=True)).fit(overwrite=True)
    return data, base / "run", time.perf_counter() - start


def load_inputs(data: Path) -> list[dict[str, Any]]:
    """Rows of every split that have text, audio and image, with the file bytes in memory."""
    import pandas as pd

    rows = []
    for split in ("train", "dev", "test"):
        df = pd.read_csv(data / f"{split}.csv", dtype=str, keep_default_na=False)
        for r in df.to_dict(orient="records"):
            if r["audio"] and r["image"]:
                rows.append(
                    {
                        "id": r["id"],
                        "text": r["text"],
                        "audio": (Path(r["audio"]).name, (data / r["audio"]).read_bytes(), CONTENT_TYPES["audio"]),
                        "image": (Path(r["image"]).name, (data / r["image"]).read_bytes(), CONTENT_TYPES["image"]),
                    }
                )
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``affectfusion serve api`` in a subprocess; ready when /health answers."""

    def __init__(self, run: Path, threads: int, client_connections: int | None = 64) -> None:
        """``client_connections``: the per-address cap (64: every load client is on 127.0.0.1; None: the
        server's default, as the hostile cases need)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
        code = "import sys; from affectfusion.cli.serve import serve_app; serve_app(sys.argv[1:])"
        cmd = [sys.executable, "-c", code, "api", str(run), "--port", str(self.port), "--log-level", "warning"]
        if client_connections is not None:
            cmd += ["--max-client-connections", str(client_connections)]
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (open as long as the server runs)
        self.peak_sampled_mib = 0.0
        self._sampling = threading.Event()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ready_seconds = self._wait_ready()
        threading.Thread(target=self._sample, daemon=True).start()

    def _wait_ready(self, timeout: float = 120) -> float:
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"server exited with code {self.proc.returncode}:\n{self.log.read()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"server not ready after {timeout} s")

    def rss_mib(self, field: str = "VmRSS") -> float | None:
        """Current (VmRSS) or peak (VmHWM) resident memory from /proc; psutil's RSS elsewhere."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        try:
            import psutil

            return psutil.Process(self.proc.pid).memory_info().rss / 2**20
        except Exception:  # psutil absent or the process gone: no number rather than a wrong one
            return None

    def _sample(self) -> None:
        while not self._sampling.wait(0.1):
            rss = self.rss_mib()
            if rss is not None:
                self.peak_sampled_mib = max(self.peak_sampled_mib, rss)

    def peak_mib(self) -> float | None:
        return self.rss_mib("VmHWM") or self.peak_sampled_mib or None

    def stop(self) -> None:
        self._sampling.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- load ---------------------------------------------------------------------------------------------


def request_kwargs(row: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    data = {"text": row["text"]} if "text" in kinds else {}
    files = {k: row[k] for k in kinds if k != "text"}
    return {"data": data, "files": files or None}


def run_cell(url: str, rows: list[dict[str, Any]], kinds: tuple[str, ...], n: int, clients: int, warmup: int) -> dict:
    """``n`` requests from ``clients`` threads; latencies in ms, status counts, throughput."""
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
        return local.client

    def one(i: int) -> tuple[float, int, str]:
        kw = request_kwargs(rows[i % len(rows)], kinds)
        start = time.perf_counter()
        try:
            r = client().post("/predict", **kw)
            body = r.json()
            status, detail = r.status_code, "" if r.status_code == 200 else str(body.get("detail"))
        except (httpx.HTTPError, ValueError) as e:
            status, detail = 0, f"{type(e).__name__}: {e}"
        return (time.perf_counter() - start) * 1000, status, detail

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(warmup)))
        start = time.perf_counter()
        results = list(pool.map(one, range(n)))
        wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    statuses: dict[str, int] = {}
    for _, status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    failures = sorted({d for _, s, d in results if s != 200})[:5]
    return {
        "requests": n,
        "clients": clients,
        "wall_seconds": wall,
        "requests_per_second": n / wall,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "mean": statistics.fmean(latencies),
            "max": latencies[-1],
        },
        "status_counts": statuses,
        "ok": statuses.get("200", 0),
        "client_4xx": sum(c for s, c in statuses.items() if s.startswith("4")),
        "server_5xx": sum(c for s, c in statuses.items() if s.startswith("5")),
        "transport_errors": statuses.get("0", 0),
        "failure_examples": failures,
    }


def first_request_ms(url: str, row: dict[str, Any], kinds: tuple[str, ...]) -> float:
    """The first prediction after start-up (lazy imports, JIT compilation, first model calls)."""
    start = time.perf_counter()
    r = httpx.post(f"{url}/predict", timeout=120, **request_kwargs(row, kinds))
    if r.status_code != 200:
        raise SystemExit(f"first request failed: {r.status_code} {r.text}")
    return (time.perf_counter() - start) * 1000


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (the value below which q% of the requests finished)."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def rejections(url: str, row: dict[str, Any], max_upload_mb: float) -> list[dict[str, Any]]:
    """The four bad inputs of the acceptance criteria: each must be a 4xx with a message."""
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * int((max_upload_mb + 1) * 2**20)
    cases = {
        "oversized image": {"files": {"image": ("big.png", big, "image/png")}},
        "wrong content type": {"files": {"image": ("notes.txt", b"hello", "text/plain")}},
        "corrupt image": {"files": {"image": ("face.png", b"\x89PNG\r\n\x1a\ngarbage", "image/png")}},
        "empty text": {"data": {"text": "  "}},
    }
    out = []
    with httpx.Client(base_url=url, timeout=120) as c:
        for name, kw in cases.items():
            r = c.post("/predict", **kw)
            out.append({"case": name, "status": r.status_code, "detail": r.json().get("detail")})
        assert c.post("/predict", **request_kwargs(row, ("text",))).status_code == 200
    return out


# -- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    env = environment()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    tmp_before = set(Path(tempfile.gettempdir()).glob("affectfusion-upload-*"))
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as base:
        data, run, train_seconds = prepare(Path(base), args.run)
        rows = load_inputs(data)
        server = Server(run, args.threads)
        try:
            info = httpx.get(f"{server.url}/info", timeout=30).json()
            taken = set(info["inputs"])
            rss_loaded = server.rss_mib()
            first_ms = first_request_ms(server.url, rows[0], tuple(k for k in ("text", "audio", "image") if k in taken))
            print(
                f"server ready in {server.ready_seconds:.2f} s (Predictor load {info['load_seconds']:.3f} s), "
                f"RSS {rss_loaded:.0f} MiB, first request {first_ms:.0f} ms; {len(rows)} input rows",
                file=sys.stderr,
            )
            cells = []
            for scenario in args.scenarios.split(","):
                kinds = SCENARIOS[scenario]
                if not set(kinds) <= taken:
                    print(f"  skip {scenario}: the model takes {', '.join(sorted(taken))}", file=sys.stderr)
                    continue
                for clients in concurrency:
                    cell = run_cell(server.url, rows, kinds, args.requests, clients, args.warmup)
                    cell.update(scenario=scenario, server_rss_mib_after=server.rss_mib())
                    cells.append(cell)
                    lat = cell["latency_ms"]
                    print(
                        f"  {scenario:<17} clients={clients}: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
                        f"{cell['requests_per_second']:.0f} req/s, 5xx {cell['server_5xx']}",
                        file=sys.stderr,
                    )
            refused = rejections(server.url, rows[0], info["limits"]["max_upload_mb"])
            hostile = held(server.url, server.rss_mib, info)
            peak = server.peak_mib()
            rss_end = server.rss_mib()
        finally:
            server.stop()
    leftover = sorted(str(p) for p in set(Path(tempfile.gettempdir()).glob("affectfusion-upload-*")) - tmp_before)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(
        title=f"REST API on loopback ({info['name']}: {', '.join(info['modalities'])}; {args.requests} req/cell)"
    )
    for col in (
        "scenario",
        "clients",
        "requests",
        "ok",
        "4xx",
        "5xx",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "req/s",
        "RSS MiB",
    ):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for c in cells:
        lat = c["latency_ms"]
        table.add_row(
            c["scenario"],
            str(c["clients"]),
            str(c["requests"]),
            str(c["ok"]),
            str(c["client_4xx"]),
            str(c["server_5xx"] + c["transport_errors"]),
            f"{lat['p50']:.1f}",
            f"{lat['p95']:.1f}",
            f"{lat['p99']:.1f}",
            f"{c['requests_per_second']:.1f}",
            f"{c['server_rss_mib_after']:.0f}" if c["server_rss_mib_after"] else "-",
        )
    console.print(table)
    console.print(
        f"server ready {server.ready_seconds:.2f} s after start (Predictor load {info['load_seconds']:.3f} s), "
        f"first request {first_ms:.0f} ms; "
        f"RSS after load {rss_loaded:.0f} MiB, at end {rss_end:.0f} MiB, peak {peak:.0f} MiB"
        + (f"; fixture run trained in {train_seconds:.1f} s" if train_seconds is not None else ""),
        highlight=False,
    )
    for r in refused:
        console.print(f"refused {r['case']}: {r['status']} {r['detail']}", highlight=False)
    console.print(f"upload temp folders left behind: {len(leftover)}", highlight=False)
    held_table = Table(title="held: hostile inputs (issue 12), one request each while /health is polled")
    for col in ("case", "status", "seconds", "/health max s", "peak RSS MiB", "budget MiB", "held"):
        held_table.add_column(col, justify="left" if col == "case" else "right")
    for h in hostile:
        held_table.add_row(
            h["case"],
            str(h["status"]),
            f"{h['seconds']:.2f}",
            f"{h['health_max_s']:.3f}",
            f"{h['peak_rss_mib']:.0f}",
            f"{h['rss_budget_mib']:.0f}",
            "yes" if h["held"] else "NO",
        )
    console.print(held_table)

    report = {
        "benchmark": "serve",
        "environment": env,
        "settings": {
            "run": str(args.run) if args.run else "fixture media config trained in a temp folder",
            "model": {k: info[k] for k in ("name", "fusion", "tasks", "inputs")},
            "extractors": {m: (v["extractor"] or {}).get("extractor") for m, v in info["modalities"].items()},
            "requests_per_cell": args.requests,
            "warmup_per_cell": args.warmup,
            "concurrency": concurrency,
            "server_threads": args.threads,
            "input_rows": len(rows),
            "latency": "client-side wall time per POST /predict (httpx, keep-alive, one client per thread)",
            "memory": "server VmHWM (peak RSS) from /proc/<pid>/status; per-cell VmRSS after the cell",
        },
        "load": {
            "server_ready_seconds": server.ready_seconds,
            "predictor_load_seconds": info["load_seconds"],
            "first_request_ms": first_ms,
            "fixture_train_seconds": train_seconds,
        },
        "memory_mib": {"after_load": rss_loaded, "at_end": rss_end, "peak": peak},
        "cells": cells,
        "rejections": refused,
        "held": hostile,
        "upload_temp_dirs_left": leftover,
        "total_5xx": sum(c["server_5xx"] for c in cells),
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)
    failed = any(not 400 <= r["status"] < 500 for r in refused) or not all(h["held"] for h in hostile)
    if report["total_5xx"] or failed or leftover:
        sys.exit(1)


if __name__ == "__main__":
    main()
