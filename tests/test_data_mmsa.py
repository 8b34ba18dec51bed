"""The mmsa adapter on fixture pickles in MMSA's layouts, the restricted unpickler, MMSA's metrics."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from affectfusion.config import validate
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import regression_metrics
from affectfusion.evaluation.mmsa_metrics import mmsa_metrics
from affectfusion.pipeline import load_dataset
from affectfusion.safe_pickle import load_data_pickle
from affectfusion.training.trainer import Trainer

SPLITS = {"train": 24, "valid": 10, "test": 8}


def _part(n: int, rng: np.random.Generator, layout: str, split: str) -> dict:
    """One split as MMSA stores it. ``aligned``: text/audio/vision share T=12, zero rows pad, no lengths;
    ``unaligned``: audio/vision have their own T with ``*_lengths``; ``bert``: adds ``text_bert``;
    ``sims``: labels in [-1, 1] plus per-modality labels."""
    videos = [f"{'' if split == 'valid' else split + '_'}vid{k % 4}" for k in range(n)]  # video-disjoint splits
    ids = np.array([f"{v}$_${k // 4 + 1}" for k, v in enumerate(videos)], dtype=object)
    y = rng.uniform(-1, 1, n) if layout == "sims" else np.round(rng.uniform(-3, 3, n) * 3) / 3
    signal = y[:, None, None]
    t = 12
    text = rng.normal(size=(n, t, 6)) + signal
    text[:, 9:] = 0.0  # aligned padding: zero rows at the end
    part = {
        "id": ids,
        "raw_text": np.array([f"utterance {k}" for k in range(n)], dtype=object),
        "text": text.astype(np.float32),
        "regression_labels": y.astype(np.float32),
        "classification_labels": (np.sign(y) + 1).astype(np.float32),
    }
    if layout in ("unaligned", "bert", "sims"):
        ta, tv = 15, 7
        part["audio"] = (rng.normal(size=(n, ta, 5)) + signal).astype(np.float32)
        part["audio"][0, 0, 0] = -np.inf  # COVAREP's -inf, which MMSA zeroes
        part["vision"] = (rng.normal(size=(n, tv, 4)) + signal).astype(np.float32)
        part["audio_lengths"] = [int(v) for v in rng.integers(3, ta + 1, n)]
        part["vision_lengths"] = np.asarray(rng.integers(2, tv + 1, n))
    else:
        part["audio"] = (rng.normal(size=(n, t, 5)) + signal).astype(np.float32)
        part["vision"] = (rng.normal(size=(n, t, 4)) + signal).astype(np.float32)
        part["audio"][:, 9:] = 0.0
        part["vision"][:, 9:] = 0.0
    if layout == "bert":
        bert = np.zeros((n, 3, t), dtype=np.float32)
        bert[:, 0, :5] = rng.integers(100, 2000, (n, 5))
        bert[:, 1, :5] = 1.0
        part["text_bert"] = bert
    if layout == "sims":
        for m in "TAV":
            part[f"regression_labels_{m}"] = np.clip(y + rng.normal(scale=0.2, size=n), -1, 1).astype(np.float32)
    return part


def write_mmsa(folder: Path, layout: str, protocol: int = 4) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{layout}.pkl"
    with open(path, "wb") as f:
        pickle.dump({s: _part(n, rng, layout, s) for s, n in SPLITS.items()}, f, protocol=protocol)
    return path


def _config(root: Path, layout: str, fusion: str = "concat", **options) -> dict:
    return {
        "name": f"mmsa_{layout}",
        "data": {
            "adapter": "mmsa",
            "root": str(root),
            "val_split": "valid",
            "test_split": "test",
            "options": {"file": f"{layout}.pkl", **options},
        },
        "tasks": [{"name": "sentiment", "type": "regression", "signed": True}],
        "model": {"hidden_dim": 8, "head_hidden": 8, "fusion": {"name": fusion}},
        "train": {"epochs": 2, "batch_size": 8, "progress": False},
    }


@pytest.mark.parametrize("layout", ["aligned", "unaligned", "bert", "sims"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_every_layout_loads(tmp_path: Path, layout: str, protocol: int) -> None:
    write_mmsa(tmp_path, layout, protocol)
    cfg = validate(_config(tmp_path, layout))
    ds = load_dataset(cfg, "dev")  # our dev is MMSA's valid
    assert len(ds.samples) == SPLITS["valid"]
    s = ds.samples[0]
    assert s.group == "vid0" and s.order == 1 and s.id == "valid/vid0$_$1"
    assert {m: x.shape[1] for m, x in s.features.items()} == {"text": 6, "audio": 5, "vision": 4}
    assert s.features["text"].shape[0] == 9  # zero-padded rows dropped
    if layout == "aligned":
        assert s.features["audio"].shape[0] == 9
    else:
        raw = pickle.loads((tmp_path / f"{layout}.pkl").read_bytes())["valid"]
        assert s.features["audio"].shape[0] == raw["audio_lengths"][0]
        assert s.features["vision"].shape[0] == raw["vision_lengths"][0]
    assert all(np.isfinite(x).all() for x in s.features.values())
    assert -3 <= s.targets["sentiment"] <= 3


def test_bert_tokens_raw_text_and_sims_labels(tmp_path: Path) -> None:
    write_mmsa(tmp_path, "bert")
    ds = load_dataset(validate(_config(tmp_path, "bert", text="bert_tokens")), "train")
    tokens = ds.samples[0].features["text"]
    assert tokens.shape == (5, 1) and (tokens >= 100).all()
    write_mmsa(tmp_path, "sims")
    samples = load_dataset(
        validate(_config(tmp_path, "sims", text="none", targets={"sentiment": "regression_labels_T"})), "train"
    ).samples
    raw = pickle.loads((tmp_path / "sims.pkl").read_bytes())["train"]
    assert samples[0].targets["sentiment"] == pytest.approx(float(raw["regression_labels_T"][0]))
    assert set(samples[0].features) == {"audio", "vision"}


@pytest.mark.parametrize("fusion", ["tensor", "low_rank", "transformer"])
@pytest.mark.parametrize("layout", ["aligned", "unaligned"])
def test_mmsa_fusions_train_and_report_mmsa_metrics(tmp_path: Path, fusion: str, layout: str) -> None:
    write_mmsa(tmp_path, layout)
    cfg = validate(_config(tmp_path, layout, fusion))
    result = Trainer(cfg, tmp_path / "run").fit()
    test = result["test"]
    for key in ("acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc5", "acc7", "mae", "pearson_r"):
        assert test[key] is not None, key


class _RunsCode:
    """Pickles to a call of os.system: loading it with pickle.load would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    data = {"train": {"id": np.array(["v$_$1"], dtype=object), "audio": _RunsCode(marker)}}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    with pytest.raises(AffectFusionError, match=r"evil\.pkl: refused to load: the pickle refers to (posix|nt)\.system"):
        load_data_pickle(path)
    cfg = validate(_config(tmp_path, "evil"))
    with pytest.raises(AffectFusionError, match="refused to load"):
        load_dataset(cfg, "train")
    assert not marker.exists()
    # The same file really does run code under plain pickle (so the refusal above is what saved us).
    pickle.loads(path.read_bytes())
    assert marker.exists()


class _ObjectArrayFromBytes:
    """Pickles to numpy's protocol-5 array rebuild asked for an object array (pointers from raw bytes)."""

    def __reduce__(self):
        from numpy._core.numeric import _frombuffer

        return (_frombuffer, (b"\0" * 8, np.dtype("O"), (1,), "C"))


def test_protocol_5_buffers_cannot_build_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps(_ObjectArrayFromBytes(), protocol=5))
    with pytest.raises(
        AffectFusionError, match=r"obj\.pkl could not be read as a pickle: ValueError: cannot create an OBJECT"
    ):
        load_data_pickle(path)


@pytest.mark.parametrize("name", ["builtins.eval", "subprocess.Popen", "numpy.load", "torch.load"])
def test_any_other_global_is_refused(tmp_path: Path, name: str) -> None:
    module, attr = name.rsplit(".", 1)
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02c" + module.encode() + b"\n" + attr.encode() + b"\n.")
    with pytest.raises(AffectFusionError, match=f"refers to {name}"):
        load_data_pickle(path)


def test_missing_keys_and_splits_are_named(tmp_path: Path) -> None:
    write_mmsa(tmp_path, "aligned")
    with pytest.raises(AffectFusionError, match=r"no split 'holdout'.*train"):
        load_dataset(validate(_config(tmp_path, "aligned")), "holdout")
    with pytest.raises(AffectFusionError, match=r"missing key.*text_bert"):
        load_dataset(validate(_config(tmp_path, "aligned", text="bert_tokens")), "train")
    (tmp_path / "cut.pkl").write_bytes((tmp_path / "aligned.pkl").read_bytes()[:100])
    with pytest.raises(AffectFusionError, match=r"cut\.pkl could not be read as a pickle"):
        load_data_pickle(tmp_path / "cut.pkl")


def test_mmsa_metrics_by_hand() -> None:
    t = np.array([-2.6, -1.0, 0.0, 0.4, 1.6, 3.0])
    p = np.array([-3.4, 0.2, -0.3, 0.6, 2.4, 2.2])
    m = mmsa_metrics(t, p)
    # has0: truth >= 0 -> [F, F, T, T, T, T]; pred >= 0 -> [F, T, F, T, T, T]: 4 of 6 right.
    assert m["acc2_has0"] == pytest.approx(4 / 6)
    # class F: precision 1/2, recall 1/2 -> F1 1/2 (support 2); class T: P 3/4, R 3/4 -> 3/4 (support 4).
    assert m["f1_has0"] == pytest.approx((2 * 0.5 + 4 * 0.75) / 6)
    # non0 drops truth 0: truth > 0 [F, F, T, T, T]; pred > 0 [F, T, T, T, T]: 4 of 5.
    assert m["acc2_non0"] == pytest.approx(4 / 5)
    # class F: P 1/1, R 1/2 -> 2/3 (support 2); class T: P 3/4, R 1 -> 6/7 (support 3).
    assert m["f1_non0"] == pytest.approx((2 * (2 / 3) + 3 * (6 / 7)) / 5)
    # acc7: round(clip(., -3, 3)): truth [-3, -1, 0, 0, 2, 3], pred [-3, 0, -0, 1, 2, 2] -> 3 of 6.
    assert m["acc7"] == pytest.approx(3 / 6)
    # acc5: round(clip(., -2, 2)): truth [-2, -1, 0, 0, 2, 2], pred [-2, 0, -0, 1, 2, 2] -> 4 of 6.
    assert m["acc5"] == pytest.approx(4 / 6)
    full = regression_metrics(t, p, signed=True)
    assert full["acc7"] == m["acc7"] and full["mae"] == pytest.approx(np.abs(t - p).mean())
    assert full["pearson_r"] == pytest.approx(np.corrcoef(t, p)[0, 1])
    assert "acc7" not in regression_metrics(t, p)
