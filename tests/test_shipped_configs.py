"""Every shipped config trains end to end through the CLI (shrunk: few samples, one epoch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from affectfusion.cli import main
from affectfusion.config import expand_variants, list_packaged_configs, load_config
from tests.helpers import SHARED_DATA

SHRINK_SYNTHETIC = ["data.options.n_train=48", "data.options.n_eval=24", "train.epochs=1", "train.progress=false"]


@pytest.mark.parametrize("name", list_packaged_configs())
def test_shipped_config_runs_from_cli(name: str, tmp_path: Path, monkeypatch) -> None:
    cfg = load_config(name)
    sets = ["train.epochs=1", "train.progress=false"]
    if cfg.data.adapter == "synthetic":
        sets = SHRINK_SYNTHETIC
    elif cfg.data.root and cfg.data.root.startswith("../shared/data"):
        if not SHARED_DATA.is_dir():
            pytest.skip("../shared/data is absent")
        sets.append(f"data.root={SHARED_DATA / Path(cfg.data.root).name}")
    out = tmp_path / name
    args = ["affectfusion", "train", name, "--out", str(out)] + [f"--set={s}" for s in sets]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    runs = [out / v for v in expand_variants(cfg)] if cfg.variants else [out]
    for run in runs:
        metrics = json.loads((run / "eval" / cfg.data.val_split / "metrics.json").read_text())
        assert metrics["n"] > 0
    if cfg.variants:
        assert (out / "comparison" / "comparison.csv").is_file()
