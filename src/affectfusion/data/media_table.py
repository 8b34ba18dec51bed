"""Your own raw multimodal data as one table: a row per sample, a column per modality and target.

``<root>/<split>.csv`` (or ``.jsonl``) with, e.g., columns ``id, text, audio, image, emotion``:
text cells are the text itself, media cells are file paths relative to ``root``. An empty cell
means that modality is missing for that row, so text-only, text+image and full rows mix freely.
This is also the layout ``affectfusion predict --batch`` reads, so a training table and a
prediction table look alike.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import Field

from affectfusion.data.examples import media as media_examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or JSONL table as strings (empty cells as ''), with a clear error for anything else."""
    try:
        if path.suffix.lower() == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise AffectFusionError(f"table not found: {path}") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise AffectFusionError(f"{path}: not a readable CSV/JSONL table ({str(e).splitlines()[0]})") from None
    return df.fillna("").astype(str)


@DATASETS.register("media_table")
class MediaTableAdapter(DatasetAdapter):
    """A CSV/JSONL per split: text cells and media file paths per modality, targets per task."""

    write_example = staticmethod(media_examples.media_table)

    class Options(DatasetAdapter.Options):
        table: str = Field("{split}.csv", description="table relative to root; {split} is the split name")
        inputs: dict[str, str] = Field(
            ...,
            min_length=1,
            description="modality -> column; the column holds text or a file path relative to root",
        )
        targets: dict[str, str] = Field(default_factory=dict, description="task name -> column")
        id_column: str = Field("id", description="unique sample id (row number if the column is absent)")
        group_column: str | None = Field(
            None, description="speaker / person / conversation column for group-disjoint checks"
        )
        order_column: str | None = Field(
            None, description="integer position of the row within its group (a conversation), for model.context"
        )
        speaker_column: str | None = Field(None, description="who speaks the row, for context speaker embeddings")
        text_modalities: list[str] = Field(
            default_factory=lambda: ["text"], description="modalities whose cells are text, not file paths"
        )

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        o = self.options
        path = root / o.table.replace("{split}", split)
        df = read_table(path)
        needed = [*o.inputs.values(), *o.targets.values()]
        needed.extend(c for c in (o.group_column, o.order_column, o.speaker_column) if c)
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise AffectFusionError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(df.columns)})")
        extra = [c for c in df.columns if c not in {*o.inputs.values(), *o.targets.values(), o.id_column}]
        samples = []
        for i, (_, row) in enumerate(df.iterrows()):
            sid = row[o.id_column] if o.id_column in df.columns and row[o.id_column] else f"{split}/{i}"
            raw = {}
            for m, col in o.inputs.items():
                cell = row[col].strip()
                if cell:
                    raw[m] = row[col] if m in o.text_modalities else root / cell
            targets = {t: row[col] or None for t, col in o.targets.items()}
            group = row[o.group_column] if o.group_column else None
            metadata = {c: row[c] for c in extra if row[c]}  # other columns: subgroups, cv fold columns
            sample = Sample(
                id=str(sid), features={}, targets=targets, group=group, source=str(path), raw=raw, metadata=metadata
            )
            if o.order_column:
                sample.order = _order(row[o.order_column], f"{path}: row {i + 2} column {o.order_column!r}")
            if o.speaker_column:
                sample.speaker = row[o.speaker_column].strip() or None
            samples.append(sample)
        return samples


def _order(cell: str, where: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise AffectFusionError(f"{where} = {cell!r}: expected an integer position") from None
