"""The vision-language path (P4): BLIP-2 + LoRA writes emotions, a 6-d emotion vector and action units.

``config`` (the ``kind: vlm`` schema), ``targets`` (label -> answer text), ``parse`` (answer text ->
fields), ``model`` (local BLIP-2 loading, LoRA, inputs), ``train`` (the ``affectfusion train``
recipe), ``predictor`` (images -> :class:`~affectfusion.recipes.vlm.predictor.VLMPrediction`), ``tiny``
(a tiny random BLIP-2 folder for tests), ``run_predictor`` and ``dashboard`` (the run served like any
other), ``example`` (the contract test's tiny run). Heavy libraries load only when a model does.
"""

from __future__ import annotations

from pathlib import Path

from affectfusion.rundir import declared_kind
from affectfusion.runkinds import RunKind


def is_vlm_run(run_dir: Path) -> bool:
    return declared_kind(Path(run_dir)) == "vlm"


KIND = RunKind(
    "vlm",
    is_vlm_run,
    "affectfusion.recipes.vlm.run_predictor:VLMRunPredictor.load",
    "affectfusion.recipes.vlm.dashboard:VLMBackend",
    train="affectfusion.recipes.vlm.train:train_kind",
    example="affectfusion.recipes.vlm.example:example",
    description="P4: a vision-language model (BLIP-2 + LoRA) that writes its answer",
)
