"""Every face in an image: one prediction per face (``predict --all-faces``, the API's ``all_faces=true``).

:meth:`Predictor.predict_faces <affectfusion.serve.predictor.Predictor.predict_faces>` sends the image
through the run's face extractor once: faces are detected and counted (more than ``limits.max_faces``
is an error before any is classified), then each is cropped and read; the input's other modalities
are extracted once and shared by every face's prediction. This module holds the steps that do not
need the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError, Extractor
from affectfusion.extract.base import guarded
from affectfusion.serve.base import Prediction

FaceReads = list[tuple[np.ndarray | None, dict[str, Any]]]


def face_modality(routed: Mapping[str, Any], extractors: Mapping[str, Extractor]) -> str:
    """The one modality of this input whose extractor can read every face (``fer_cnn``)."""
    readers = [m for m in routed if m in extractors and extractors[m].reads_faces]
    if len(readers) != 1 or not hasattr(extractors[readers[0]], "extract_each_face"):
        has = ", ".join(m for m, ex in extractors.items() if ex.reads_faces) or "none"
        raise AffectFusionError(
            f"all faces: give an image to exactly one fer_cnn face modality (this run's face modalities: {has})"
        )
    return readers[0]


def read_each_face(extractor: Extractor, modality: str, path: Path, max_faces: int) -> FaceReads:
    """Per face (largest first) its features and report; one no-face entry if there is none."""
    each = guarded(lambda: extractor.extract_each_face(path, max_faces))  # type: ignore[attr-defined]  # fer_cnn's, see face_reader
    if isinstance(each, ExtractionError):
        raise AffectFusionError(f"{modality}: {each}")
    return each


def face_predictions(
    id: str,
    modality: str,
    path: Path,
    each: FaceReads,
    rest: tuple[dict[str, np.ndarray], str | None, dict[str, dict[str, Any]]],
) -> tuple[list[Prediction], list[Sample]]:
    """One prediction per face (ids ``<id>#face<k>``, or ``<id>`` when no face was found) and the samples
    to score for those without an error. ``rest``: the other modalities' features, error and face reports.

    With no face, the run's ``no_face`` policy applies as in :meth:`Predictor.predict`: ``whole_frame``
    read the whole image, ``missing_modality`` predicts from the other modalities if there are any.
    """
    features, error, faces = rest
    results, samples = [], []
    for k, (x, report) in enumerate(each):
        p = Prediction(id=f"{id}#face{k}" if report["found"] else id, faces={**faces, modality: report})
        results.append(p)
        feats = dict(features)
        if x is not None:
            feats[modality] = np.asarray(x, dtype=np.float32)
        elif report["policy"] == "error" or not feats:
            p.error = f"{modality}: no face found in {path}"
        p.error = error or p.error
        if p.error is None:
            samples.append(Sample(id=p.id, features=feats))
    return results, samples
