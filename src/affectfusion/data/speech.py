"""Speech datasets as audio files plus a manifest: RAVDESS, EmoDB, pyAudioAnalysis valence/arousal, any folder.

The adapters yield raw samples (``raw[modality] = Path(wav)``, no features); the extractors named
in ``data.extract`` turn them into features (cached). The layout is the one in ``shared/data``:
``<root>/labels.csv`` with one row per file (``path`` relative to root, ``split``, a speaker
column and label columns) and the files under ``<root>/<split>/``. ``extra_views`` repeats the
path under more modality names, so one file can feed two extractors (eGeMAPS functionals and an
MFCC sequence) that a model then fuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from affectfusion.data.examples import media as media_examples
from affectfusion.data.feature_folder import _fill, _is_empty, _read_manifest, _rows_of_split
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError


class _ManifestOptions(DatasetAdapter.Options):
    manifest: str = Field(
        "labels.csv", description="CSV/TSV/JSONL manifest relative to root; may contain {split} (then no split column)"
    )
    file_column: str = Field("path", description="column with the audio file, relative to root (or absolute)")
    split_column: str = Field("split", description="keep rows whose value in this column equals the split")
    group_column: str | None = Field("group", description="speaker column, for speaker-disjoint checks and reports")
    targets: dict[str, str] = Field(
        {"emotion": "emotion"}, min_length=1, description="task name -> manifest column; empty cells are unlabelled"
    )
    modality: str = Field("audio", description="modality name the file path is given under (raw[modality])")
    extra_views: list[str] = Field(
        [], description="more modality names for the same file, e.g. [audio_seq] to extract a second feature set"
    )
    metadata_columns: list[str] = Field(
        [],
        description="manifest columns kept as sample metadata if present (subgroups: test --by gender); "
        "every other column but the file and split is kept too (a cv --folds column)",
    )

    @model_validator(mode="after")
    def _distinct_views(self) -> _ManifestOptions:
        views = [self.modality, *self.extra_views]
        if len(set(views)) != len(views):
            raise ValueError(f"modality and extra_views must be distinct names, got {views}")
        return self


@DATASETS.register("audio_folder")
class AudioFolderAdapter(DatasetAdapter):
    """Audio files (WAV/FLAC/OGG/MP3) listed by a manifest with file, split, speaker and label columns."""

    write_example = staticmethod(media_examples.audio_folder)

    Options = _ManifestOptions
    options: _ManifestOptions

    def load(self, root: Path | None, split: str) -> list[Sample]:
        o = self.options
        assert root is not None  # needs_root: load_dataset checks it
        manifest = root / _fill(o.manifest, split)
        rows = _read_manifest(manifest)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        needed = [o.file_column, *o.targets.values(), *([o.group_column] if o.group_column else [])]
        missing = [c for c in dict.fromkeys(needed) if c not in columns]
        if missing:
            raise AffectFusionError(
                f"manifest {manifest} has no column(s) {', '.join(map(repr, missing))} (columns: {', '.join(columns)})"
            )
        rows = _rows_of_split(rows, o.manifest, o.split_column, split, manifest)
        samples = [self._sample(root, row, manifest) for row in rows]
        if not any(path.is_file() for s in samples for path in s.raw.values()):
            raise AffectFusionError(
                f"none of the {len(samples)} audio files of split {split!r} exists under {root} "
                f"(e.g. {samples[0].raw[o.modality]})"
            )
        return samples

    def _sample(self, root: Path, row: dict[str, Any], manifest: Path) -> Sample:
        o = self.options
        rel = row.get(o.file_column)
        if _is_empty(rel):
            raise AffectFusionError(f"manifest {manifest}: a row has an empty {o.file_column!r} ({row})")
        path = root / str(rel)
        group = row.get(o.group_column) if o.group_column else None
        return Sample(
            id=str(Path(str(rel)).with_suffix("")),  # relative path without extension: unique per file
            features={},
            targets={task: None if _is_empty(row.get(c)) else row.get(c) for task, c in o.targets.items()},
            group=None if _is_empty(group) else str(group),
            source=str(rel),
            raw=dict.fromkeys([o.modality, *o.extra_views], path),
            metadata=self._metadata(row),
        )

    def _metadata(self, row: dict[str, Any]) -> dict[str, str]:
        """The named metadata columns, then every other column but the file and split (a cv fold column)."""
        o = self.options
        extra = [c for c in row if c not in (o.file_column, o.split_column, *o.metadata_columns)]
        return {c: str(row[c]) for c in [*o.metadata_columns, *extra] if not _is_empty(row.get(c))}


@DATASETS.register("ravdess")
class RavdessAdapter(AudioFolderAdapter):
    """RAVDESS speech (shared/data/ravdess_speech_16k): 8 emotions and 2 intensities, grouped by actor."""

    write_example = staticmethod(media_examples.ravdess)

    class Options(_ManifestOptions):
        group_column: str | None = "actor"
        targets: dict[str, str] = Field(
            {"emotion": "emotion", "intensity": "intensity"},
            min_length=1,
            description="task -> column: emotion (neutral calm happy sad angry fearful disgust surprised), "
            "intensity (normal strong); also gender, statement",
        )
        metadata_columns: list[str] = Field(
            ["actor", "gender", "intensity", "statement"], description="kept as metadata"
        )


@DATASETS.register("emodb")
class EmodbAdapter(AudioFolderAdapter):
    """EmoDB (shared/data/emodb_2s_16k): 7 German emotions, grouped by speaker."""

    write_example = staticmethod(media_examples.emodb)

    class Options(_ManifestOptions):
        group_column: str | None = "speaker"
        targets: dict[str, str] = Field(
            {"emotion": "emotion"},
            min_length=1,
            description="task -> column: emotion (anger boredom disgust fear happiness sadness neutral); also gender",
        )
        metadata_columns: list[str] = Field(["speaker", "gender", "age"], description="kept as metadata")


@DATASETS.register("pyaudioanalysis_va")
class PyAudioAnalysisVAAdapter(AudioFolderAdapter):
    """pyAudioAnalysis speechEmotion clips (shared/data/pyaudioanalysis_speech_va): valence/arousal in [-1, 1]."""

    write_example = staticmethod(media_examples.pyaudioanalysis_va)

    class Options(_ManifestOptions):
        targets: dict[str, str] = Field(
            {"valence": "valence", "arousal": "arousal"}, min_length=1, description="task -> column"
        )
