"""The ``ensemble`` run kind: several fusion runs of one config (seeds) served and scored as one model.

Design. An ensemble is a folder holding ``ensemble.json``, a manifest that lists its member run folders,
rather than a folder recognised by its layout (``seed<k>/`` children): the manifest says which runs are
meant to be one model (a seed folder may also hold variants, or seeds trained for a comparison only),
lets an ensemble be made of runs trained anywhere (a ``kind: ensemble`` config with ``members``), and
is what bounds it (at most :data:`~affectfusion.recipes.ensemble.members.MAX_MEMBERS` members, checked
before any member loads). ``train CONFIG --seeds 0,1,2`` writes it into ``<out>`` beside ``seed<k>/``
and ``seeds/``, so every seeded training is servable as one run; a ``kind: ensemble`` config
(``config`` + ``seeds``) is that command written down.

The members are ordinary fusion runs and must be copies of one model (same tasks and classes,
modalities and feature sizes, data: :mod:`.members`). The ensemble predicts the mean of the members'
calibrated class probabilities, or of their values (:mod:`.combine`), scored by the evaluation code of
a single run (:mod:`.evaluate`) into the folder's own ``eval/<split>/``. Serving wraps the members'
:class:`~affectfusion.serve.predictor.Predictor` objects (:mod:`.predictor`): ``predict``, the REST API
and the dashboard take the folder as they take a run. Folds of ``affectfusion cv`` are not members:
each fold reads other data splits, which the members' check refuses.
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
