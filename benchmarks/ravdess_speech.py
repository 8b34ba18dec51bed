"""RAVDESS 8-class speaker-independent speech emotion: eGeMAPS vs the offline Whisper-base backbone.

    .venv/bin/python benchmarks/ravdess_speech.py [--seeds N] [--data PATH] [--threads N] [--out FILE]

Split (shared/data/ravdess_speech_16k): train = actors 1-4 and 9-18 (840 files), dev = actors 5-6
(120), test_small = actors 7-8 (120); no actor is in two splits. Every system is fitted on train and
selects on dev only, then reports dev and test_small:

- ``ravdess_speech`` (shipped config, eGeMAPS functionals + LLD sequence) and ``ravdess_whisper``
  (shipped config, silence trimmed, every frozen Whisper-base layer pooled to mean and std -> trained head), each
  trained once per seed (mean ± std; best epoch by dev macro F1);
- eGeMAPS functionals (88-d) -> StandardScaler -> RBF SVC, C in {0.01, 0.1, 1, 10, 100} by dev;
- frozen Whisper-base, final layer mean-pooled (512-d; the issue's baseline, its floor 0.689 on held-out
  actors when fitted on train + dev) -> StandardScaler -> logistic regression, C in {0.01, 0.1, 1, 10} by dev;
- the same logistic regression on the ravdess_whisper features themselves (every layer's mean and std,
  7168-d): how much of the gain is the layers rather than the trained head.

Both LR baselines read the ravdess_whisper feature store: its last hidden state equals CTranslate2's encoder
output (tests/test_extract_whisper.py), so the final-layer mean is a slice of it. Each is fitted twice: on the
config's features (leading and trailing silence trimmed by silero-vad) and on untrimmed clips. Also measured:
``whisper_base`` extraction speed (seconds of audio per wall second), final layer (CTranslate2) and every
layer (transformers), 1 and 2 threads, on 40 train files. A second run extracts nothing. Prints a table and
writes JSON (default ``benchmarks/results/ravdess_speech.json``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import class_scores, environment, mean_std, seeded_args, split_arrays, train_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ravdess_speech_16k"
CONFIG, WHISPER_CONFIG = "ravdess_speech", "ravdess_whisper"
SPLITS = ("dev", "test_small")
SVM_C = (0.01, 0.1, 1.0, 10.0, 100.0)
LR_C = (0.01, 0.1, 1.0, 10.0)
SPEED_CLIPS = 40
WHISPER_LAYERS, WHISPER_DIM = 7, 512  # hidden states of Whisper-base (embedding + 6 layers), their width
# The LR baselines read ravdess_whisper's features as configured (silence trimmed) and untrimmed, as the issue's
# "frozen Whisper + LR" floor was measured.
LR_AUDIO = {"silence trimmed": {}, "untrimmed": {"data.extract.audio.options.vad": False}}


def _parse_args(argv: list[str] | None) -> Any:
    return seeded_args(
        argv,
        name="ravdess_speech",
        description="RAVDESS speaker-independent 8-class: eGeMAPS and Whisper-base configs vs SVM / LR baselines",
        data=DEFAULT_DATA,
        data_help="ravdess_speech_16k folder",
        config=CONFIG,
        quick=False,
    )


def _pick_by_dev(make: Any, grid: tuple[float, ...], xy: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Fit ``make(C)`` on train for every C; keep the one with the best dev macro F1 (ties: smaller C)."""
    per_c = []
    for c in grid:
        model = make(c).fit(*xy["train"])
        per_c.append({"C": c, **{s: class_scores(xy[s][1], model.predict(xy[s][0])) for s in SPLITS}})
    best = max(per_c, key=lambda r: r["dev"]["macro_f1"])
    return {"chosen_C": best["C"], "metrics": {s: best[s] for s in SPLITS}, "per_C": per_c}


def _arrays(config: str, data: Path, options: dict[str, Any] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from affectfusion.config import load_config

    cfg = load_config(config, {"data.root": str(data), **(options or {})})
    out = {}
    for split in ("train", *SPLITS):
        x, targets, _ = split_arrays(cfg, split)
        out[split] = (x, targets["emotion"])
    return out


def svm_baseline(data: Path) -> dict[str, Any]:
    """eGeMAPS functionals + StandardScaler + RBF SVC (the ravdess_speech config's audio_func view)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    xy = _arrays(CONFIG, data, {"data.options.extra_views": []})
    return _pick_by_dev(lambda c: make_pipeline(StandardScaler(), SVC(C=c, kernel="rbf", gamma="scale")), SVM_C, xy)


def whisper_lr_baselines(data: Path, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logistic regression on frozen Whisper-base: the final layer's mean, and every layer's mean and std,
    from the ravdess_whisper feature store with ``overrides`` (e.g. no silence trimming)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    every = _arrays(WHISPER_CONFIG, data, overrides)  # [N, layers * (mean, std) * 512], layer by layer
    last = {s: (x.reshape(len(x), WHISPER_LAYERS, 2, WHISPER_DIM)[:, -1, 0], y) for s, (x, y) in every.items()}

    def make(c: float) -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))

    return {"final_layer_mean": _pick_by_dev(make, LR_C, last), "all_layers_mean_std": _pick_by_dev(make, LR_C, every)}


def config_runs(config: str, args: Any, data: Path, runs_dir: Path) -> list[dict[str, Any]]:
    """Train a shipped config once per seed; dev and test_small emotion scores of the best (dev) checkpoint."""
    from affectfusion.config import load_config

    base = load_config(config, {"data.root": str(data)})
    runs = []
    for seed in range(base.train.seed, base.train.seed + args.seeds):
        r = train_config(
            config,
            {"data.root": str(data), "train.seed": seed, "train.threads": args.threads},
            runs_dir / f"{config}_seed{seed}",
            args.threads,
        )
        m = {s: {k: r["metrics"][s]["tasks"]["emotion"][k] for k in ("accuracy", "macro_f1")} for s in SPLITS}
        runs.append({"seed": seed, "seconds": r["seconds"], "n_parameters": r["n_parameters"], "metrics": m})
        print(
            f"  {config} seed {seed}: dev acc {m['dev']['accuracy']:.3f}, test_small "
            f"{m['test_small']['accuracy']:.3f} ({r['seconds']:.0f}s)",
            file=sys.stderr,
        )
    return runs


def extraction_speed(data: Path, clips: int) -> dict[str, Any]:
    """whisper_base seconds of audio per wall second (model load excluded): the final layer via CTranslate2
    and every layer via transformers (the ravdess_whisper setting), on 1 and 2 threads."""
    import soundfile as sf

    from affectfusion.extract.base import EXTRACTORS

    files = sorted((data / "train").rglob("*.wav"))[:clips]
    audio_s = sum(sf.info(f).duration for f in files)
    out: dict[str, Any] = {"clips": len(files), "audio_seconds": audio_s}
    cls = EXTRACTORS.get("whisper_base")
    for layers in ("last", "all"):
        for threads in (1, 2):
            ex = cls("whisper_base", cls.Options(layers=layers, output="mean_std"), device="cpu", threads=threads)
            ex.ensure_ready()
            ex.extract(files[0])  # warm-up
            t0 = time.perf_counter()
            for f in files:
                ex.extract(f)
            wall = time.perf_counter() - t0
            out[f"layers_{layers}_threads_{threads}"] = {
                "wall_seconds": wall,
                "audio_seconds_per_second": audio_s / wall,
            }
            print(
                f"  whisper_base layers {layers}, {threads} thread(s): {audio_s / wall:.1f} s of audio/s",
                file=sys.stderr,
            )
    return out


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    return {f"{s}_{k}": mean_std([r["metrics"][s][k] for r in runs]) for s in SPLITS for k in ("accuracy", "macro_f1")}


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    data = args.data.expanduser().resolve()
    if not (data / "labels.csv").is_file():
        print(f"error: RAVDESS folder not found or without labels.csv: {data} (pass --data PATH)", file=sys.stderr)
        sys.exit(2)
    from rich.console import Console
    from rich.table import Table

    from affectfusion.io import write_json

    env = environment()
    t0 = time.perf_counter()
    print("baselines: eGeMAPS + SVM, Whisper-base + LR ...", file=sys.stderr)
    svm = svm_baseline(data)
    lrs = {audio: whisper_lr_baselines(data, overrides) for audio, overrides in LR_AUDIO.items()}
    tmp = None if args.runs_dir else tempfile.TemporaryDirectory(prefix="ravdess_speech_")
    try:
        runs_dir = (args.runs_dir or Path(tmp.name)).resolve()
        runs = {c: config_runs(c, args, data, runs_dir) for c in (CONFIG, WHISPER_CONFIG)}
    finally:
        if tmp is not None:
            tmp.cleanup()
    summary = {c: _summary(r) for c, r in runs.items()}
    speed = extraction_speed(data, SPEED_CLIPS)

    table = Table(title="RAVDESS speech, 8 classes, speaker-independent (dev = actors 5-6, test_small = actors 7-8)")
    table.add_column("system")
    for split in SPLITS:
        table.add_column(f"{split} acc", justify="right")
        table.add_column(f"{split} macro F1", justify="right")

    def cell(stat: dict[str, float | None]) -> str:
        return f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if stat["std"] is not None else "")

    for c in (WHISPER_CONFIG, CONFIG):
        table.add_row(
            f"toolkit: {c} ({args.seeds} seeds)",
            *(cell(summary[c][f"{s}_{k}"]) for s in SPLITS for k in ("accuracy", "macro_f1")),
        )
    rows = [
        (f"Whisper-base {layers} + LR, {audio} (C={base['chosen_C']:g})", base)
        for audio, by_layers in lrs.items()
        for layers, base in zip(("final layer mean", "all layers mean+std"), by_layers.values(), strict=True)
    ]
    for label, base in (*rows, (f"eGeMAPS + SVM (C={svm['chosen_C']:g})", svm)):
        table.add_row(label, *(f"{100 * base['metrics'][s][k]:.1f}" for s in SPLITS for k in ("accuracy", "macro_f1")))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    w, e = summary[WHISPER_CONFIG], summary[CONFIG]
    gains = {s: w[f"{s}_accuracy"]["mean"] - e[f"{s}_accuracy"]["mean"] for s in SPLITS}
    checks = {
        "whisper_beats_egemaps_config_by_15_points": {s: gains[s] >= 0.15 for s in SPLITS},
        "whisper_beats_whisper_lr": {  # the final layer's mean, trimmed or not
            s: all(w[f"{s}_accuracy"]["mean"] > b["final_layer_mean"]["metrics"][s]["accuracy"] for b in lrs.values())
            for s in SPLITS
        },
    }
    print(
        "accuracy gain of ravdess_whisper over ravdess_speech: "
        + ", ".join(f"{s} {100 * g:+.1f} points" for s, g in gains.items()),
        file=sys.stderr,
    )
    print(f"checks: {checks}", file=sys.stderr)
    report = {
        "benchmark": "ravdess_speech",
        "environment": {**env, "torch_threads": args.threads},
        "settings": {
            "data": str(data),
            "configs": [CONFIG, WHISPER_CONFIG],
            "seeds": [r["seed"] for r in runs[CONFIG]],
            "selection": "dev only: best epoch (models) and C (SVM, LR) by dev macro F1",
            "svm": {"features": "egemaps functionals (88-d)", "kernel": "rbf", "C_grid": list(SVM_C)},
            "lr": {
                "features": "whisper_base final layer mean (512-d); all layers' mean and std (7168-d)",
                "C_grid": list(LR_C),
            },
        },
        "toolkit": {c: {"summary": summary[c], "runs": runs[c]} for c in runs},
        "svm_baseline": svm,
        "whisper_lr_baselines": lrs,
        "accuracy_gain_whisper_over_egemaps": gains,
        "checks": checks,
        "whisper_base_extraction_speed": speed,
        "total_seconds": time.perf_counter() - t0,
    }
    out = args.out.expanduser().resolve()
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
