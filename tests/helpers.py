"""Test helpers: tiny synthetic configs that train in seconds, and the shared-data location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectfusion.config import RunConfig, apply_overrides, validate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def tiny_config(overrides: dict[str, Any] | None = None) -> RunConfig:
    """A 3-modality 3-class synthetic config small enough for unit tests."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "data": {
            "adapter": "synthetic",
            "val_split": "dev",
            "test_split": "test",
            "options": {
                "modalities": {
                    "text": {"dim": 8, "informativeness": 1.0},
                    "audio": {"dim": 6, "seq_len": 5, "informativeness": 0.6},
                    "video": {"dim": 4, "seq_len": 4, "informativeness": 0.3},
                },
                "num_classes": 3,
                "n_train": 120,
                "n_eval": 60,
                "missing_rate": 0.1,
            },
        },
        "tasks": [{"name": "label", "type": "classification", "classes": ["a", "b", "c"]}],
        "model": {"hidden_dim": 16, "head_hidden": 16},
        "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "progress": False},
    }
    return validate(apply_overrides(raw, overrides or {}))


def conversation_config(context: str, options: dict[str, Any] | None = None, **model: Any) -> dict[str, Any]:
    """A synthetic conversation task (a label only its neighbours reveal) with context stage ``context``."""
    raw: dict[str, Any] = {
        "name": "syn",
        "data": {
            "adapter": "synthetic_conversation",
            "val_split": "dev",
            "test_split": "test",
            "options": {"n_conversations": 60},
        },
        "tasks": [{"name": "label", "type": "classification", "classes": ["a", "b", "c"]}],
        "model": {
            "hidden_dim": 16,
            "head_hidden": 16,
            "context": {"name": context, "options": options or {}, "window": 6, "overlap": 2},
            **model,
        },
        "train": {"epochs": 12, "batch_size": 8, "lr": 0.01, "progress": False, "early_stopping": None},
    }
    return raw


def run_cli(args: list[str], capsys: Any, monkeypatch: Any) -> tuple[int, str, str]:
    """``affectfusion <args>`` through the real entry point: (exit code, stdout, stderr)."""
    import sys

    import pytest

    from affectfusion.cli import main

    monkeypatch.setattr(sys, "argv", ["affectfusion", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), out.out, out.err


def call_cli(args: list[str]) -> int:
    """``affectfusion <args>`` outside a test's own fixtures (e.g. to build a session fixture): exit code."""
    import sys

    import pytest

    from affectfusion.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["affectfusion", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
    return 0 if exit_info.value.code is None else int(exit_info.value.code)


def assert_same_predictions(actual: str, expected: str, atol: float = 1e-6) -> None:
    """Two prediction CSVs agree: the same rows, labels and errors, probabilities equal to ``atol``.

    Byte-for-byte equality fails by a float bit or two whenever the batch size or thread count
    differs (another process on the machine changes torch's choices), so numbers get a tolerance.
    """
    import io

    import numpy as np
    import pandas as pd

    a = pd.read_csv(io.StringIO(actual), dtype=str, keep_default_na=False)
    b = pd.read_csv(io.StringIO(expected), dtype=str, keep_default_na=False)
    assert list(a.columns) == list(b.columns) and len(a) == len(b), (list(a.columns), list(b.columns))
    for column in a.columns:
        x, y = pd.to_numeric(a[column], errors="coerce"), pd.to_numeric(b[column], errors="coerce")
        numeric = x.notna() & y.notna()
        assert (a[column][~numeric] == b[column][~numeric]).all(), f"column {column!r} differs"
        assert np.allclose(x[numeric], y[numeric], atol=atol, rtol=0), f"column {column!r} differs beyond {atol}"


def asgi_scope(path: str, content_type: bytes) -> dict[str, Any]:
    """A raw ASGI POST request scope, for tests that drive the app's receive/send by hand."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", content_type), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def job_pid(x: int) -> tuple[int, int]:
    """A job for worker-pool tests (importable by a spawned worker): its input and the worker's pid."""
    import os  # only the pool tests call this

    return x * x, os.getpid()
