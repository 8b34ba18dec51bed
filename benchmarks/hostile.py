"""Hostile inputs against a running server: the "held" column of ``benchmarks/serve.py`` (issue 12) and,
run as a script, the second round (issue 22) against a features, an image, a video, an EEG and a conversation run.

    .venv/bin/python benchmarks/hostile.py [--runs features,image,video,eeg,conversation] [--slow-seconds 30] [--out F]

Issue 12 (:func:`held`, called by ``serve.py``): each case is sent once while ``/health`` is polled
every 50 ms and the server's RSS is sampled every 20 ms. It *held* when it got a 4xx, ``/health``
answered every poll within 0.5 s, and the server's peak RSS stayed under 1.5x its idle RSS plus one
model-sized input (the largest decoded input the limits admit: ``max_image_pixels`` RGB bytes).
Cases: a FLAC of 10 minutes of 8-channel 48 kHz silence (~200 KB on the wire), a 13000x13000 PNG
(~160 KB), a 100 MB JSON body to ``/predict/batch``, and a JSON body just under ``max_json_mb``.

Issue 22 (:func:`main`): each run of ``hostile_runs.py`` is trained in a temporary folder and served
with ``affectfusion serve api`` (default settings) in a subprocess; every case that run can be sent
is sent once while ``/health`` is polled, RSS sampled, and a valid request for that run is sent
again and again (one at a time). Recorded per case: status, seconds, idle / peak / after RSS,
the slowest ``/health``, and the valid requests (answered 200 within 5 s, slowest). A case *held*
when its status is a 4xx (or 200 where bounded work is fine), peak RSS <= idle + 1 GiB, ``/health``
<= 0.5 s and every valid request answered within 5 s. The cases, numbered as in the issue:

1. H.264 clips of 4096x4096 (5 frames) and 8192x8192 (4 frames), and an admitted 2048x2048 one (video run);
2. a Matroska file written as a live stream (no duration in its header) with one hour of audio (video run);
3. an EEG ``.npz`` whose ``sfreq`` member inflates to 2 GiB from ~2 MB (EEG run);
4. 64 slow clients (complete headers, then the body one byte per ``--trickle-s``) held open for
   ``--slow-seconds`` (every run): judged by the valid requests sent meanwhile;
5. ``/predict?explain=true`` with 12 modalities of ``[4000, 8]`` (features run, 12 modalities);
6. ``/predict/batch/files`` with 16 FLACs of 119 s, and with 5 (within ``max_request_media_seconds``:
   valid requests must get the model between its items) (the image run, which also takes audio);
7. a conversation of 10 turns, one of them with a 3e38 feature (and one with 1e20): held when only
   that turn failed and no other turn's answer changed (the conversation run, GRU context stage).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import socket
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from affectfusion.data.examples.media import write_clip, write_live_mkv

HEALTH_BUDGET_S = 0.5
VALID_BUDGET_S = 5.0
RSS_HEADROOM_MIB = 1024.0
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "hostile.json"


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


# -- issue 22: the media, built small ------------------------------------------------------------------


def npz_bomb(path: Path, inflated: int = 2**31) -> bytes:
    """A valid ``data`` member and an ``sfreq`` member whose zeros inflate to ``inflated`` bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (inflated // 8,)})
    data = io.BytesIO()
    np.save(data, np.zeros((30, 1000)))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.npy", data.getvalue())
        with z.open("sfreq.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            block = bytes(2**24)
            for _ in range(inflated // len(block)):
                f.write(block)
    return path.read_bytes()


def long_flac(seconds: int, rate: int = 16_000) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, 1, "PCM_16", format="FLAC") as f:
        for _ in range(seconds):
            f.write(np.zeros(rate, dtype=np.int16))
    return buf.getvalue()


# -- issue 22: the attacks -----------------------------------------------------------------------------

Attack = Callable[[], dict[str, Any]]


def post(url: str, **kwargs: Any) -> dict[str, Any]:
    """One request; its status and a short detail (status 0: the connection failed or timed out)."""
    try:
        r = httpx.post(url, timeout=600, **kwargs)
    except httpx.HTTPError as e:
        return {"status": 0, "detail": f"{type(e).__name__}: {e}"[:160]}
    try:
        body = r.json()
    except ValueError:
        body = {"detail": r.text[:160]}
    out = {"status": r.status_code, "detail": str(body.get("detail", ""))[:160]}
    if "failed" in body:
        out["failed"] = body["failed"]
    return out


def slow_clients(url: str, seconds: float, trickle_s: float, n: int = 64) -> dict[str, Any]:
    """``n`` sockets that send complete headers and the start of a form, then its body a byte at a time every
    ``trickle_s`` (well within the idle timeout), for ``seconds``. Returns how many the server cut off."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        'Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="id"\r\n\r\n'
    ).encode()  # then the id field's value, a byte at a time
    # The attacker is one other address (127.0.0.2 on loopback): the server caps connections per address,
    # and the valid requests come from 127.0.0.1 as any other client's would.
    source = ("127.0.0.2", 0) if host in ("127.0.0.1", "localhost") else None
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=5, source_address=source)
        s.sendall(head)
        s.setblocking(False)
        socks.append(s)
    closed: dict[int, str] = {}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for k, s in enumerate(socks):
            if k in closed:
                continue
            try:
                reply = s.recv(200)
                closed[k] = reply.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                closed[k] = type(e).__name__
                continue
            try:
                s.send(b"x")
            except OSError as e:
                closed[k] = type(e).__name__
        time.sleep(min(trickle_s, max(0.0, end - time.perf_counter())))
    for s in socks:
        s.close()
    answers = sorted(set(closed.values()))
    status = next((int(a.split()[1]) for a in answers if a.startswith("HTTP/")), 0)
    return {"status": status, "detail": f"{len(closed)} of {n} cut off by the server: {', '.join(answers)[:120]}"}


def explain_request(url: str, rows: int, modalities: int = 12, dim: int = 8) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    files = {}
    for i in range(modalities):
        buf = io.BytesIO()
        np.save(buf, rng.standard_normal((rows, dim)).astype(np.float32))
        files[f"features_m{i:02d}"] = (f"m{i:02d}.npy", buf.getvalue(), "application/octet-stream")
    return post(f"{url}/predict?explain=true", files=files)


def conversation(url: str, bad: float) -> dict[str, Any]:
    """Ten turns of the run's feature modalities, turn 3 carrying ``bad``; ``others_changed``: how many of the
    other turns' answers differ from the same conversation without turn 3 (it should not be their context)."""
    rng = np.random.default_rng(1)
    dims = {m: spec["dim"] for m, spec in httpx.get(f"{url}/info", timeout=30).json()["modalities"].items()}
    turns = [
        {
            "id": f"t{k}",
            "speaker": f"s{k % 2}",
            "features": {m: rng.standard_normal(d).round(3).tolist() for m, d in dims.items()},
        }
        for k in range(10)
    ]
    poisoned = json.loads(json.dumps(turns))
    poisoned[3]["features"][next(iter(dims))][0] = bad
    result = post(f"{url}/predict/conversation", json={"turns": poisoned})
    try:
        got = httpx.post(f"{url}/predict/conversation", json={"turns": poisoned}, timeout=120).json()
        clean = httpx.post(f"{url}/predict/conversation", json={"turns": turns[:3] + turns[4:]}, timeout=120).json()
        answers = {p["id"]: p.get("tasks") for p in got.get("predictions", [])}
        expected = {p["id"]: p.get("tasks") for p in clean.get("predictions", [])}
        result["others_changed"] = sum(1 for k, want in expected.items() if not _close(answers.get(k), want))
    except (httpx.HTTPError, ValueError) as e:
        result["others_changed"] = -1
        result["detail"] = f"{type(e).__name__}: {e}"[:160]
    result["detail"] = (
        f"failed={result.get('failed')}, other turns changed={result['others_changed']}; " + result["detail"]
    )
    return result


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) < 1e-4
    return a == b


Accept = Callable[[dict[str, Any]], bool]


def refused(r: dict[str, Any]) -> bool:
    return 400 <= r["status"] < 500


def refused_or_answered(r: dict[str, Any]) -> bool:
    return refused(r) or r["status"] == 200


def only_the_bad_turn(r: dict[str, Any]) -> bool:
    return r["status"] == 200 and r.get("failed") == 1 and r.get("others_changed") == 0


def cases_for(run: str, url: str, tmp: Path, args: argparse.Namespace) -> dict[str, tuple[Attack, Accept]]:
    """Case name -> (attack, whether its outcome is acceptable); every case also needs RSS, /health and
    the valid requests within bounds (:func:`attack_run`)."""
    cases: dict[str, tuple[Attack, Accept]] = {}
    if run == "video":
        for side, frames in ((4096, 5), (8192, 4), (2048, 40)):
            black = [np.zeros((side, side, 3), np.uint8)] * frames
            clip = write_clip(tmp / f"c{side}.mp4", black, fps=10 if side == 2048 else 25).read_bytes()
            name = f"1 {side}x{side} H.264, {frames} frames ({len(clip) // 1024} KB)"
            cases[name] = (
                lambda clip=clip: post(f"{url}/predict", files={"video": ("c.mp4", clip, "video/mp4")}),
                refused_or_answered if side == 2048 else refused,
            )
        mkv = write_live_mkv(tmp / "live.mkv", 3600, rate=8000).read_bytes()  # ~100 bytes a second
        cases[f"2 MKV without duration, 1 h audio ({len(mkv) // 1024} KB)"] = (
            lambda: post(f"{url}/predict", files={"video": ("live.mkv", mkv, "video/x-matroska")}),
            refused,
        )
    if run == "eeg":
        bomb = npz_bomb(tmp / "bomb.npz")
        cases[f"3 npz sfreq member -> 2 GiB ({len(bomb) // 1024} KB)"] = (
            lambda: post(f"{url}/predict", files={"signal": ("bomb.npz", bomb, "application/zip")}),
            refused,
        )
    cases[f"4 64 slow clients for {args.slow_seconds:g} s"] = (
        lambda: slow_clients(url, args.slow_seconds, args.trickle_s),
        lambda r: True,  # judged by the valid requests meanwhile
    )
    if run == "features":
        cases[f"5 explain, 12 modalities x [{args.explain_rows}, 8]"] = (
            lambda: explain_request(url, args.explain_rows),
            refused_or_answered,
        )
    if run == "conversation":
        for bad in (3e38, 1e20):
            cases[f"7 conversation, one turn {bad:g}"] = (lambda bad=bad: conversation(url, bad), only_the_bad_turn)
    if run == "image":
        flac = long_flac(119)
        files = [("files", (f"{i}.flac", flac, "audio/flac")) for i in range(16)]
        cases[f"6 batch of 16 FLACs x 119 s ({16 * len(flac) // 1024} KB)"] = (
            lambda: post(f"{url}/predict/batch/files", data={"kind": "audio"}, files=files),
            refused,
        )
        cases["6 batch of 5 FLACs x 119 s (admitted: 595 s)"] = (
            lambda: post(f"{url}/predict/batch/files", data={"kind": "audio"}, files=files[:5]),
            refused_or_answered,
        )
    return cases


def measure(
    url: str, rss: Callable[[], float | None], attack: Attack, valid: Callable[[httpx.Client], httpx.Response]
) -> dict[str, Any]:
    """Run ``attack`` while polling /health, sampling RSS and sending valid requests one at a time."""
    idle = rss() or 0.0
    peak = [idle]
    done = threading.Event()
    result: dict[str, Any] = {}
    valid_s: list[float] = []
    valid_status: list[int] = []
    health: list[float] = []

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss() or 0.0)

    def run_attack() -> None:
        start = time.perf_counter()
        result.update(attack())
        result["seconds"] = time.perf_counter() - start
        done.set()

    def legit() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            done.wait(0.1)
            while not valid_s or not done.wait(0.5):  # at least one, however fast the attack
                start = time.perf_counter()
                try:
                    valid_status.append(valid(c).status_code)
                except httpx.HTTPError:
                    valid_status.append(0)
                valid_s.append(time.perf_counter() - start)

    threads = [threading.Thread(target=f, daemon=True) for f in (sample, run_attack, legit)]
    for t in threads:
        t.start()
    with httpx.Client(base_url=url, timeout=60) as c:
        while not done.is_set():
            start = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                c.get("/health")
            health.append(time.perf_counter() - start)
            time.sleep(0.05)
    for t in threads[1:]:
        t.join()
    time.sleep(1.0)  # what the server keeps after the reply
    result.update(
        idle_rss_mib=idle,
        peak_rss_mib=peak[0],
        after_rss_mib=rss() or 0.0,
        health_max_s=max(health, default=0.0),
        valid_sent=len(valid_s),
        valid_ok_5s=sum(1 for s, st in zip(valid_s, valid_status, strict=True) if st == 200 and s <= VALID_BUDGET_S),
        valid_max_s=max(valid_s, default=0.0),
        valid_seconds=[round(v, 3) for v in valid_s],
        valid_statuses=sorted(set(valid_status)),
    )
    return result


def attack_run(run: str, base: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train ``run``, serve it, and send every case it can be sent."""
    from hostile_runs import build, valid_request
    from serve import Server

    tmp = base / f"{run}_media"
    tmp.mkdir(parents=True)
    run_dir = build(run, base / run)
    server = Server(run_dir, 1, client_connections=None)  # the default per-address cap
    out = []
    try:
        valid = valid_request(run, tmp)
        with httpx.Client(base_url=server.url, timeout=120) as c:
            first = valid(c)
            if first.status_code != 200:
                raise SystemExit(f"{run}: the valid request got {first.status_code}: {first.text[:300]}")
            if "audio" in httpx.get(f"{server.url}/info").json()["fields"]:  # warm: lazy imports, JIT
                c.post("/predict", files={"audio": ("warm.flac", long_flac(2), "audio/flac")})
        for name, (attack, accept) in cases_for(run, server.url, tmp, args).items():
            if args.cases and name.split()[0] not in args.cases.split(","):
                continue
            print(f"  {run}: {name} ...", file=sys.stderr)
            r = measure(server.url, server.rss_mib, attack, valid)
            ok_status = accept(r)
            r.update(
                run=run,
                case=name,
                held=bool(
                    ok_status
                    and r["peak_rss_mib"] <= r["idle_rss_mib"] + RSS_HEADROOM_MIB
                    and r["health_max_s"] <= HEALTH_BUDGET_S
                    and r["valid_ok_5s"] == r["valid_sent"]
                ),
            )
            out.append(r)
    finally:
        server.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    from common import environment
    from hostile_runs import RUNS
    from rich.console import Console
    from rich.table import Table

    from affectfusion.io import write_json

    p = argparse.ArgumentParser(description="issue 22's hostile cases against four served runs")
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    p.add_argument("--slow-seconds", type=float, default=30.0, help="how long the 64 slow clients stay")
    p.add_argument("--trickle-s", type=float, default=5.0, help="seconds between a slow client's bytes")
    p.add_argument("--explain-rows", type=int, default=4000, help="rows of each of the 12 explained arrays")
    p.add_argument("--cases", default="", help="comma-separated case numbers to run (default: all), e.g. 1,2,6")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    env = environment()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_hostile_") as base:
        for run in args.runs.split(","):
            results.extend(attack_run(run, Path(base), args))
    table = Table(title="hostile inputs (issue 22): one case at a time, /health polled, valid requests sent")
    columns = ("run", "case", "status", "s", "idle MiB", "peak MiB", "after MiB", "/health max s", "valid <=5s", "held")
    for col in columns:
        table.add_column(col, justify="left" if col in ("run", "case") else "right")
    for r in results:
        table.add_row(
            r["run"],
            r["case"],
            str(r["status"]),
            f"{r['seconds']:.1f}",
            f"{r['idle_rss_mib']:.0f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['after_rss_mib']:.0f}",
            f"{r['health_max_s']:.3f}",
            f"{r['valid_ok_5s']}/{r['valid_sent']} (max {r['valid_max_s']:.1f} s)",
            "yes" if r["held"] else "NO",
        )
    Console(width=None if sys.stdout.isatty() else 220).print(table)
    for r in results:
        print(f"{r['run']} / {r['case']}: {r['status']} {r['detail']}")
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    write_json(
        args.out.expanduser().resolve(),
        {"benchmark": "hostile", "environment": env, "settings": settings, "cases": results},
    )
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
