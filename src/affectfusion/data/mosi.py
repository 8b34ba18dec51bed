"""CMU-MOSI utterance features (``shared/data/cmu_mosi_unimodal`` layout): binary sentiment per utterance.

``<root>/<split>.npz`` holds, per video padded to a fixed number of utterances, ``text`` /
``audio`` / ``video`` ``[N, U, 50]``, ``audio_raw`` ``[N, U, 73]``, ``mask`` ``[N, U]`` (1 = real
utterance), ``label`` ``[N, U]`` (0 negative, 1 positive, -1 padding), ``source_index`` ``[N]`` and
``source_split`` (scalar). Padded positions hold non-zero values, so only ``mask == 1`` is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from affectfusion.data import examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError

Modality = Literal["text", "audio", "video", "audio_raw"]


@DATASETS.register("mosi")
class MosiAdapter(DatasetAdapter):
    """CMU-MOSI utterance-level text/audio/video features with binary sentiment, one sample per utterance."""

    write_example = staticmethod(examples.mosi)

    class Options(DatasetAdapter.Options):
        modalities: list[Modality] = Field(
            ["text", "audio", "video"],
            min_length=1,
            description="modalities to read: text, audio, video (50-d each), audio_raw (73-d, unnormalised)",
        )
        context_window: int = Field(
            0,
            ge=0,
            description="0 = one [D] vector per utterance; k > 0 = a [<=2k+1, D] sequence of the utterance "
            "and up to k neighbours each side in the same video (truncated at the video's ends, not padded, "
            "so the target utterance is the centre step only away from the ends)",
        )
        target_name: str = Field("sentiment", description="task name of the 0/1 sentiment label")

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        path = root / f"{split}.npz"
        if not path.is_file():
            found = sorted(p.name for p in root.glob("*.npz"))
            raise AffectFusionError(f"{path} does not exist; .npz files in {root}: {', '.join(found) or 'none'}")
        o = self.options
        data = self._read(path, [*dict.fromkeys(o.modalities), "mask", "label", "source_index", "source_split"])
        mask, label = data["mask"].astype(bool), data["label"]
        source_split = str(data["source_split"])
        k = o.context_window
        samples = []
        for i, video in enumerate(data["source_index"]):
            real = np.flatnonzero(mask[i])  # utterance positions in order; padding excluded
            for rank, j in enumerate(real):
                features: dict[str, np.ndarray]
                if k == 0:
                    features = {m: data[m][i, j] for m in o.modalities}
                else:
                    window = real[max(0, rank - k) : rank + k + 1]
                    features = {m: data[m][i, window] for m in o.modalities}
                y = int(label[i, j])
                samples.append(
                    Sample(
                        id=f"{split}/v{int(video):03d}/u{j:02d}",
                        features=features,
                        targets={o.target_name: y if y >= 0 else None},
                        group=f"{source_split}-v{int(video):03d}",
                        source=str(path),
                        metadata={"video": f"{source_split}-v{int(video):03d}"},
                        order=int(j),
                    )
                )
        return samples

    @staticmethod
    def _read(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
        """The needed arrays, checked for the [N, U(, D)] shapes the format promises."""
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in keys if k not in z.files]
                if missing:
                    raise AffectFusionError(f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(z.files)})")
                data = {k: z[k] for k in keys}
        except AffectFusionError:
            raise
        except Exception as e:  # corrupt zip, pickled object arrays, ...
            raise AffectFusionError(f"{path} could not be read as .npz: {type(e).__name__}: {e}") from None
        if data["mask"].ndim != 2:
            raise AffectFusionError(f"{path}: 'mask' has shape {data['mask'].shape}, expected [videos, utterances]")
        n, u = data["mask"].shape
        expected = {"mask": (n, u), "label": (n, u), "source_index": (n,), "source_split": ()}
        for key, arr in data.items():
            want = expected.get(key, (n, u, arr.shape[-1] if arr.ndim else 0))
            if arr.shape != want:
                raise AffectFusionError(
                    f"{path}: array {key!r} has shape {arr.shape}, expected {want} to match 'mask' {(n, u)}"
                )
            if key not in expected:
                data[key] = arr.astype(np.float32, copy=False)
        return data
