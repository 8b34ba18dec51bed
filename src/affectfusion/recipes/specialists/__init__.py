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
"""

from affectfusion.recipes.specialists.config import SpecialistsConfig, load_specialists_config
from affectfusion.recipes.specialists.train import train_specialists

__all__ = ["SpecialistsConfig", "load_specialists_config", "train_specialists"]
