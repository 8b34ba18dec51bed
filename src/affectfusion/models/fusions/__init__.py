"""Fusion strategies, one per module (torchmultimodal-style), all over a dict of modalities.

Every strategy accepts any non-empty subset of present modalities per sample. Missing modalities
and padded time steps are replaced by zeros (or by ``[0, ..., 0, 1]`` in the tensor-product
methods) with ``torch.where`` before anything else touches them, so their values - even NaN -
can never reach the output, and attention never runs a softmax over a row with no allowed key.
Each module registers its strategy when :data:`affectfusion.models.FUSIONS` is first read.
"""
