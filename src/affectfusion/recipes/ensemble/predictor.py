"""The ensemble's predictor: its first member's Predictor, scoring every input with every member.

It is a :class:`~affectfusion.serve.predictor.Predictor` of the first member, so routing, input limits,
extraction (run once, with the first member's extractors: the members share their data config), faces
and conversations behave exactly as for a single run; only scoring differs: each member scores the
extracted features with its own model and trust layer, and :func:`combine_served` averages them.
Attribution is not averaged (``supports_explain`` is False), nor are conformal sets (each member's set
was calibrated for that member alone).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.recipes.ensemble.combine import combine_served
from affectfusion.recipes.ensemble.members import read_members
from affectfusion.serve.base import Prediction
from affectfusion.serve.predictor import Predictor


class EnsemblePredictor(Predictor):
    """Several fusion runs of one config (seeds), served as one model: the mean of their outputs."""

    supports_explain = False  # per-member Shapley values are not averaged into one attribution

    def __init__(self, root: Path, which: str = "best", device: str = "cpu", warm: bool = True) -> None:
        start = time.perf_counter()
        manifest, runs = read_members(root)  # count and compatibility checked before any weights load
        super().__init__(runs[0], which, device, warm)
        self.root = Path(root)
        self.manifest = manifest
        # the other members score only: their extractors are never used, so never set up (warm=False)
        self.members: list[Predictor] = [self, *(Predictor(run, which, device, warm=False) for run in runs[1:])]
        self.member_names = list(manifest.members)
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def load(cls, run_dir: str | Path, which: str = "best", device: str = "cpu", warm: bool = True) -> Predictor:
        return cls(Path(run_dir), which, device, warm)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def results_dir(self) -> Path:
        return self.root

    def info(self) -> dict[str, Any]:
        """The first member's info (tasks, modalities, fusion; the ensemble's own metrics and load time), with
        its members."""
        return {**super().info(), "name": self.name, "kind": "ensemble", "members": self.member_names}

    def embed(
        self,
        inputs: Sequence[Mapping[str, Any]],
        ids: Sequence[str] | None = None,
        faces: list[dict[str, dict[str, Any]]] | None = None,
    ) -> list[dict[str, np.ndarray] | AffectFusionError]:
        raise AffectFusionError(f"{self.name} is an ensemble: embed with one of its members ({self.root})")

    def _score(self, samples: list[Sample], results: list[Prediction], explain: bool = False) -> None:
        """Every member scores the samples (its calibrated probabilities), then the mean fills ``results``."""
        self.check_explain(explain)
        per_member = []
        for member in self.members:
            found = [Prediction(id=r.id) for r in results]
            Predictor._score(member, samples, found)
            per_member.append(found)
        thresholds = {
            t.name: np.stack([np.asarray(m.model.thresholds[t.name]) for m in self.members])
            for t in self.run.config.tasks
            if t.type == "multilabel"
        }
        combine_served(self.run.config.tasks, per_member, self.member_names, thresholds, results)
