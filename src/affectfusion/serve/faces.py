"""Every face in an image: one prediction per face (``predict --all-faces``, the API's ``all_faces=true``).

A fusion run's :class:`~affectfusion.serve.predictor.Predictor` takes this mixin. The image goes
through the run's face extractor once: faces are detected and counted (more than
``limits.max_faces`` is an error before any is classified), then each is cropped and read; the
input's other modalities are extracted once and shared by every face's prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError
from affectfusion.extract.base import guarded
from affectfusion.serve.base import Prediction

if TYPE_CHECKING:
    from affectfusion.serve.predictor import Predictor


class EachFace:
    """``predict_faces`` for the fusion Predictor (uses its routing, extraction and scoring)."""

    def predict_faces(
        self: Predictor, inputs: Mapping[str, Any], id: str = "input", explain: bool = False
    ) -> list[Prediction]:
        """One prediction per face in the input's image, largest first, ids ``<id>#face<k>``, each with its
        face report (``used`` = k, ``box``) under ``faces``; other inputs (text, audio) count for every face.

        With no face the run's ``no_face`` policy applies to the single prediction (id ``<id>``). A
        problem with the whole input (unknown key, no face modality, too many faces) is one prediction
        with ``error`` set.
        """
        try:
            routed = self._route(inputs)
            readers = [m for m in routed if m in self.extractors and self.extractors[m].reads_faces]
            if len(readers) != 1 or not hasattr(self.extractors[readers[0]], "extract_each_face"):
                has = ", ".join(m for m, ex in self.extractors.items() if ex.reads_faces) or "none"
                raise AffectFusionError(
                    f"all faces: give an image to exactly one fer_cnn face modality (this run's face modalities: {has})"
                )
            m = readers[0]
            path = self._raw_input("image", routed.pop(m))
            each = guarded(lambda: self.extractors[m].extract_each_face(path, self.limits.max_faces))  # type: ignore[attr-defined]
            if isinstance(each, ExtractionError):
                raise AffectFusionError(f"{m}: {each}")
        except AffectFusionError as e:
            return [Prediction(id=id, error=str(e))]
        features, errors, faces = self._gather([routed]) if routed else ([{}], [None], [{}])
        results, samples = [], []
        for k, (x, report) in enumerate(each):
            p = Prediction(id=f"{id}#face{k}" if report["found"] else id, faces={**faces[0], m: report})
            results.append(p)
            if errors[0] is not None:
                p.error = errors[0]
                continue
            feats = dict(features[0])
            if x is not None:
                feats[m] = np.asarray(x, dtype=np.float32)
            elif report["policy"] == "error" or not feats:
                p.error = f"{m}: no face found in {path}"
                continue
            samples.append(Sample(id=p.id, features=feats))
        if samples:
            self._score(samples, [p for p in results if p.error is None], explain)
        return results
