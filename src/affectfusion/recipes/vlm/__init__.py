"""The vision-language path (P4): BLIP-2 + LoRA writes emotions, a 6-d emotion vector and action units.

``config`` (the ``kind: vlm`` schema), ``targets`` (label -> answer text), ``parse`` (answer text ->
fields), ``model`` (local BLIP-2 loading, LoRA, inputs), ``train`` (the ``affectfusion train``
recipe), ``predictor`` (images -> :class:`~affectfusion.vlm.predictor.VLMPrediction`), ``tiny``
(a tiny random BLIP-2 folder for tests). Heavy libraries load only when a model does.
"""
