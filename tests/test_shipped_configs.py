"""Every shipped config trains end to end through the CLI (shrunk: few samples, one epoch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from affectfusion.cli import main
from affectfusion.config import expand_variants, list_packaged_configs, load_config
from affectfusion.data.examples.daic_woz import make_daic_woz
from affectfusion.data.examples.eav import make_eav
from affectfusion.data.examples.iemocap import make_iemocap
from affectfusion.recipes import config_kind
from tests.helpers import SHARED_DATA

# Restricted corpora: a generated copy in the published layout, shrunk for speed.
FIXTURES = {
    "daic_woz": (make_daic_woz, ["data.options.audio_steps=25", "data.options.video_steps=25"]),
    "eav": (make_eav, ["data.options.splits={train: [1, 2], dev: [3], test: [4]}"]),
    "iemocap": (make_iemocap, []),
}

SHRINK_SYNTHETIC = ["data.options.n_train=48", "data.options.n_eval=24", "train.epochs=1", "train.progress=false"]


def _params() -> list:
    """Configs that extract features from a whole shared corpus take minutes: marked slow.

    Other recipes (``kind: specialists`` / ``vlm``) are run by their own tests.
    """
    params = []
    for name in list_packaged_configs():
        if config_kind(name) != "fusion":
            continue
        cfg = load_config(name)
        heavy = bool(cfg.data.extract) and cfg.data.adapter not in FIXTURES
        params.append(pytest.param(name, marks=pytest.mark.slow) if heavy else name)
    return params


@pytest.mark.parametrize("name", _params())
def test_shipped_config_runs_from_cli(name: str, tmp_path: Path, monkeypatch) -> None:
    cfg = load_config(name)
    sets = ["train.epochs=1", "train.progress=false"]
    if cfg.data.adapter == "synthetic":
        sets = SHRINK_SYNTHETIC
    elif cfg.data.adapter in FIXTURES:
        make, shrink = FIXTURES[cfg.data.adapter]
        root = make(tmp_path / "data")
        sets += [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", *shrink]
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
