"""Raw face images and videos in class folders (or listed by a CSV manifest): samples with ``raw`` paths.

Layout ``<root>/<split>/<class>/<file>`` (the Kaggle/torchvision image-folder form, as in
``fer2013_subset`` and ``muxspace_faces_subset``). When ``<root>/labels.csv`` exists it is read
instead of scanning folders: its ``path`` (relative to root), ``split`` and ``label`` columns, and a
group column (``identity`` for face photos) so that identity-disjoint checks work. The extractors
named in ``data.extract`` then turn ``raw[...]`` into features.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from affectfusion.data.examples import media as media_examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError
from affectfusion.inputs import INPUTS


class MediaFolderAdapter(DatasetAdapter):
    """Shared reading of class folders / a manifest; subclasses set the modalities and file types."""

    modalities: ClassVar[tuple[str, ...]]
    extensions: ClassVar[tuple[str, ...]]

    class Options(DatasetAdapter.Options):
        manifest: str = Field(
            "labels.csv",
            description="CSV relative to root (may contain {split}); read when it exists, else class folders "
            "<root>/<split>/<class>/ are scanned",
        )
        path_column: str = Field("path", description="manifest column: file path relative to root")
        label_column: str = Field("label", description="manifest column: class name (empty: the file's folder name)")
        split_column: str = Field("split", description="manifest column: split name (not needed with {split})")
        group_column: str = Field("identity", description="manifest column: person/video group, if present")
        target: str = Field("emotion", description="task name the class label is stored under")

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        manifest = root / self.options.manifest.replace("{split}", split)
        rows = self._manifest_rows(root, manifest, split) if manifest.is_file() else self._scan(root, split)
        return [self._sample(root, rel, label, group) for rel, label, group in rows]

    def _scan(self, root: Path, split: str) -> list[tuple[str, str, str | None]]:
        folder = root / split
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise AffectFusionError(
                f"{folder} does not exist and there is no manifest {self.options.manifest!r} "
                f"(folders in {root}: {', '.join(found) or 'none'})"
            )
        files = sorted(p for p in folder.glob("*/*") if p.is_file() and p.suffix.lower() in self.extensions)
        if not files:
            raise AffectFusionError(
                f"no {'/'.join(self.extensions)} files in {folder}/<class>/ (expected <root>/<split>/<class>/<file>)"
            )
        return [(p.relative_to(root).as_posix(), p.parent.name, None) for p in files]

    def _manifest_rows(self, root: Path, manifest: Path, split: str) -> list[tuple[str, str, str | None]]:
        o = self.options
        with manifest.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = list(reader)
        if o.path_column not in columns:
            raise AffectFusionError(
                f"manifest {manifest} has no {o.path_column!r} column (columns: {', '.join(columns)}); "
                "set data.options.path_column"
            )
        if "{split}" not in o.manifest:
            if o.split_column not in columns:
                raise AffectFusionError(
                    f"manifest {manifest} has no {o.split_column!r} column; add one or name one manifest per "
                    "split with {split}"
                )
            values = sorted({r[o.split_column] for r in rows})
            rows = [r for r in rows if r[o.split_column] == split]
            if not rows:
                raise AffectFusionError(
                    f"manifest {manifest}: no row has split {split!r} (splits: {', '.join(values)})"
                )
        missing = [r[o.path_column] for r in rows if not (root / r[o.path_column]).is_file()]
        if missing:
            raise AffectFusionError(
                f"manifest {manifest}: {len(missing)} of {len(rows)} {split!r} files do not exist, e.g. {missing[0]!r}"
            )
        out = []
        for r in rows:
            rel = r[o.path_column]
            label = (r.get(o.label_column) or "").strip() or Path(rel).parent.name
            group = (r.get(o.group_column) or "").strip() or None
            out.append((rel, label, group))
        return out

    def _sample(self, root: Path, rel: str, label: str, group: str | None) -> Sample:
        path = (root / rel).resolve()
        return Sample(
            id=Path(rel).with_suffix("").as_posix(),
            features={},
            targets={self.options.target: label},
            group=group,
            source=rel,
            raw={m: path for m in self.modalities},
        )


@DATASETS.register("image_folder")
class ImageFolderAdapter(MediaFolderAdapter):
    """Face images in <root>/<split>/<class>/ (JPG/PNG/BMP) or listed in labels.csv: raw['image'], target emotion."""

    write_example = staticmethod(media_examples.image_folder)

    modalities = ("image",)
    extensions = INPUTS["image"].suffixes


@DATASETS.register("video_folder")
class VideoFolderAdapter(MediaFolderAdapter):
    """Videos in <root>/<split>/<class>/ or listed in labels.csv: raw['video'] and raw['audio'] (the same file)."""

    write_example = staticmethod(media_examples.video_folder)

    modalities = ("video", "audio")
    extensions = INPUTS["video"].suffixes

    class Options(MediaFolderAdapter.Options):
        group_column: str = Field("group", description="manifest column: speaker/session group, if present")

    options: Options
