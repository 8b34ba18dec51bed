"""MMSA feature pickles (CMU-MOSI, CMU-MOSEI, CH-SIMS; aligned or unaligned), read without running code.

The layout is the one MMSA's ``data_loader.py`` reads: a dict with ``train`` / ``valid`` / ``test``,
each a dict of per-sample arrays: ``text`` ``[N, T, D]`` (GloVe or BERT features) and/or
``text_bert`` ``[N, 3, T]`` (BERT token ids, attention mask, segment ids), ``audio`` ``[N, Ta, Da]``,
``vision`` ``[N, Tv, Dv]``, ``audio_lengths`` / ``vision_lengths`` ``[N]`` (unaligned files only),
``regression_labels`` ``[N]`` (sentiment in [-3, 3]; [-1, 1] in SIMS), ``classification_labels``
``[N]``, ``id`` ``[N]`` (``<video>$_$<clip>``) and ``raw_text`` ``[N]``; SIMS adds
``regression_labels_T`` / ``_A`` / ``_V``. Our split names map onto MMSA's (``dev`` -> ``valid``).

An utterance's group is its video and its order the clip number, so splits stay video-disjoint
and a context stage reads the video's utterances in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from affectfusion.data.examples import conversation as conversation_examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.safe_pickle import load_data_pickle

SPLIT_ALIASES = {"dev": "valid", "val": "valid", "validation": "valid"}
CLIP_SEPARATOR = "$_$"


@DATASETS.register("mmsa")
class MmsaAdapter(DatasetAdapter):
    """An MMSA feature pickle (<root>/<file>): text/audio/vision features and sentiment per clip."""

    class Options(DatasetAdapter.Options):
        file: str = Field(..., description="the pickle relative to root, e.g. unaligned_50.pkl or aligned_50.pkl")
        text: Literal["features", "bert_tokens", "raw", "none"] = Field(
            "features",
            description="features = the 'text' array; bert_tokens = 'text_bert' token ids as a [T, 1] sequence "
            "(for an hf_lora encoder on the same BERT); raw = 'raw_text' for a data.extract text extractor",
        )
        modalities: list[Literal["audio", "vision"]] = Field(["audio", "vision"], description="non-text modalities")
        targets: dict[str, str] = Field(
            {"sentiment": "regression_labels"},
            description="task name -> label array (regression_labels, classification_labels, "
            "regression_labels_T/_A/_V in SIMS)",
        )

    options: Options
    write_example = staticmethod(conversation_examples.mmsa)

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        path = root / self.options.file
        data = load_data_pickle(path)
        name = SPLIT_ALIASES.get(split, split)
        if not isinstance(data, dict) or name not in data:
            keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
            raise AffectFusionError(f"{path}: no split {name!r} (MMSA files have train/valid/test; found {keys})")
        part = data[name]
        where = f"{path}[{name!r}]"
        if not isinstance(part, dict):
            raise AffectFusionError(f"{where}: expected a dict of arrays, found {type(part).__name__}")
        o = self.options
        text_key = {"features": "text", "bert_tokens": "text_bert", "raw": "raw_text", "none": None}[o.text]
        needed = ["id", *o.modalities, *o.targets.values(), *([text_key] if text_key else [])]
        missing = [k for k in needed if k not in part]
        if missing:
            raise AffectFusionError(f"{where}: missing key(s) {', '.join(missing)} (has {', '.join(map(str, part))})")
        ids = [str(i) for i in np.asarray(part["id"]).reshape(-1)]
        n = len(ids)
        arrays = {k: _array(part, k, where, n) for k in needed if k not in ("id", "raw_text")}
        samples = []
        for i, clip_id in enumerate(ids):
            video, _, clip = clip_id.rpartition(CLIP_SEPARATOR)
            features: dict[str, np.ndarray] = {}
            raw: dict[str, Any] = {}
            if o.text == "features":
                features["text"] = _steps(arrays["text"][i], None)
            elif o.text == "bert_tokens":
                ids_row, mask_row = arrays["text_bert"][i][0], arrays["text_bert"][i][1]
                features["text"] = ids_row[mask_row > 0].astype(np.float32)[:, None]
            elif o.text == "raw":
                raw["text"] = str(part["raw_text"][i])
            for m in o.modalities:
                lengths = part.get(f"{m}_lengths")
                features[m] = _steps(arrays[m][i], None if lengths is None else int(np.asarray(lengths)[i]))
            features = {m: x for m, x in features.items() if x.shape[0] > 0}
            samples.append(
                Sample(
                    id=f"{name}/{clip_id}",
                    features=features,
                    targets={t: _label(arrays[k][i]) for t, k in o.targets.items()},
                    group=video or clip_id,
                    order=int(clip) if clip.isdigit() else None,
                    source=str(path),
                    raw=raw,
                )
            )
        return samples


def _array(part: dict, key: str, where: str, n: int) -> np.ndarray:
    try:
        arr = np.asarray(part[key])
    except ValueError as e:
        raise AffectFusionError(f"{where}: {key!r} is not an array: {e}") from None
    if arr.shape[:1] != (n,):
        raise AffectFusionError(f"{where}: {key!r} has shape {arr.shape}, expected {n} rows to match 'id'")
    if arr.dtype.kind not in "fiub":
        raise AffectFusionError(f"{where}: {key!r} holds {arr.dtype} values, expected numbers")
    return arr


def _steps(x: np.ndarray, length: int | None) -> np.ndarray:
    """A sample's real time steps: the first ``length`` ones (unaligned files), else those not all zero
    (aligned files pad with zero rows). MMSA sets -inf audio values to 0; so do we, and NaN too."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if x.ndim == 1:
        return x[None, :]
    if length is not None:
        return x[: max(0, min(length, x.shape[0]))]
    return x[np.abs(x).sum(1) > 0]


def _label(v: Any) -> float | None:
    v = float(np.asarray(v).reshape(-1)[0])
    return None if np.isnan(v) else v
