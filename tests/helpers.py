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
