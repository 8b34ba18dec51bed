"""The ``ensemble`` run kind: several fusion runs of one config (seeds) served and scored as one model.

Design. An ensemble is a folder holding ``ensemble.json``, a manifest that lists its member run folders,
rather than a folder recognised by its layout (``seed<k>/`` children): the manifest says which runs are
meant to be one model (a seed folder may also hold variants, or seeds trained for a comparison only),
lets an ensemble be made of runs trained anywhere (a ``kind: ensemble`` config with ``members``), and
is what bounds it (at most :data:`~affectfusion.recipes.ensemble.members.MAX_MEMBERS` members, checked
before any member loads). ``train CONFIG --seeds 0,1,2`` writes it into ``<out>`` beside ``seed<k>/``
and ``seeds/``, so every seeded training is servable as one run; a ``kind: ensemble`` config
(``config`` + ``seeds``) is that command written down. ``cv --splits train`` (folds cut from some of a
config's splits only) writes it into the cv folder: the folds, each trained on other samples of those
splits, become one model scored on the splits none of them saw (the manifest's ``data``); a cv over
every split has no such split, and writes none.

The members are ordinary fusion runs and must be copies of one model (same tasks and classes,
modalities and feature sizes, data or, for folds, its extraction: :mod:`.members`). The ensemble
predicts the mean of the members' calibrated class probabilities, or of their values (:mod:`.combine`),
scored by the evaluation code of a single run (:mod:`.evaluate`) into the folder's own
``eval/<split>/``, each member scored beside it on the same samples. Serving wraps the members'
:class:`~affectfusion.serve.predictor.Predictor` objects (:mod:`.predictor`): ``predict``, the REST API
and the dashboard take the folder as they take a run. A new kind, rather than a mode of the fusion
kind, because the folder holds no model of its own and a plain run's code (``test``, ``export``,
``analyze``) must never mistake it for one.
"""

from __future__ import annotations

from pathlib import Path

from affectfusion.rundir import RunPaths
from affectfusion.runkinds import RunKind


def is_ensemble_run(run_dir: Path) -> bool:
    """A folder with an ensemble manifest (its members are checked when it is loaded)."""
    return RunPaths(Path(run_dir)).ensemble.is_file()


KIND = RunKind(
    "ensemble",
    is_ensemble_run,
    "affectfusion.recipes.ensemble.predictor:EnsemblePredictor.load",
    "affectfusion.serve.dashboard.backends:PredictorBackend",
    train="affectfusion.recipes.ensemble.train:train_kind",
    example="affectfusion.recipes.ensemble.example:example",
    description="fusion runs of one config (seeds) served as one model: the mean of their outputs",
)
