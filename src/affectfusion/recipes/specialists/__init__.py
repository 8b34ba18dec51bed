"""Specialists, then fusion (P3): one model per modality trained alone, its frozen embeddings fused.

A ``kind: specialists`` config shares ``data`` and ``tasks`` between three stages, each an ordinary
:class:`~affectfusion.config.RunConfig` trained by the one :class:`Trainer`:

1. ``specialists.<m>``: a unimodal model (``model.modalities: [m]``) trained and evaluated only on
   the samples that have modality m (P3: the image specialist never sees a text-only post).
2. Export: every split is run through each specialist's best checkpoint; its pooled encoder output
   (the specialist's ``hidden_dim``) is written as a ``feature_folder`` dataset - ``manifest.csv``
   plus ``<m>_<split>.npz`` (sample id -> embedding) - with ``provenance.json`` naming the checkpoint
   (and its SHA-256) each modality came from. A sample without m simply has no m entry.
3. ``fusion``: a model over those embeddings, trained with modality dropout (default 0.3) so that
   any subset of modalities works. The specialists are frozen by construction: fusion only reads
   the exported files.

Finally every presence pattern of the validation and test splits (text-only, text+image,
text+video, ...) is scored separately, for the fusion and for each specialist that covers it.

Layout of ``<out>``: ``config.yaml`` (resolved), ``specialists/<m>/`` and ``fusion/`` (normal run
directories: ``affectfusion test/analyze`` work on them), ``embeddings/`` and ``subsets/``
(``subsets.csv``, ``subsets.json``, ``subsets.md``). Re-running resumes: finished specialists are
skipped, embeddings are re-exported only when a specialist checkpoint changed (then the fusion is
retrained from scratch), an interrupted fusion continues from its last epoch.

Modules: ``config`` (the schema), ``train`` (the recipe), ``export``, ``subsets``, ``predictor``
(raw inputs -> specialist embeddings -> fusion, for every serving path), ``example`` (the contract
test's tiny run).
"""

from __future__ import annotations

from pathlib import Path

from affectfusion.errors import AffectFusionError
from affectfusion.rundir import RunPaths, SpecialistsPaths, declared_kind
from affectfusion.runkinds import RunKind


def is_specialists_run(run_dir: Path) -> bool:
    """The output folder of a ``kind: specialists`` config whose fusion stage is trained."""
    if declared_kind(Path(run_dir)) != "specialists":
        return False
    fusion = RunPaths(SpecialistsPaths(Path(run_dir)).fusion)
    if not fusion.meta.is_file():
        raise AffectFusionError(
            f"{run_dir} is a specialists run whose fusion is not trained yet (expected {fusion.meta} in it); "
            f"run `affectfusion train {RunPaths(Path(run_dir)).config} --out {run_dir}` to finish it"
        )
    return True


KIND = RunKind(
    "specialists",
    is_specialists_run,
    "affectfusion.recipes.specialists.predictor:SpecialistsPredictor.load",
    "affectfusion.serve.dashboard.backends:PredictorBackend",
    train="affectfusion.recipes.specialists.train:train_kind",
    example="affectfusion.recipes.specialists.example:example",
    description="P3: one specialist per modality, then a fusion of their frozen embeddings",
)
