"""``affectfusion init``: a complete, commented starter config for a user's own data.

Given a labelled table (a row per sample: text cells, media file paths, a label), it infers which
column is which, splits the rows into train/dev/test (stratified by label, disjoint by group when
a group column is named) and writes a ``media_table`` config whose every line says what it does.
Without a table it writes a template table and a config to fill in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from affectfusion.data.media_table import read_table
from affectfusion.errors import AffectFusionError
from affectfusion.inputs import INPUTS

CONFIG_FILE = "affectfusion.yaml"
TEMPLATE_TABLE = "data_template.csv"
LABEL_NAMES = ("label", "emotion", "class", "target", "y")
GROUP_NAMES = ("speaker", "actor", "subject", "participant", "person", "identity", "group", "session")
# Media kinds told apart by file suffix (the input table's), and the extractor each gets by default.
MEDIA_KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    kind: (INPUTS[kind].suffixes, extractor)
    for kind, extractor in (("audio", "egemaps"), ("image", "fer_cnn"), ("video", "video_faces"))
}
TEXT_EXTRACTOR = "minilm"
SPLIT_SHARES = {"train": 0.6, "dev": 0.2, "test": 0.2}
MIN_GROUPS = 3  # one per split at least
# Images no larger than this a side are taken for face crops (FER2013 is 48 px, AffectNet's crops 96-224):
# a face detector finds no face in most of them, so init reads the whole image (no_face: whole_frame).
FACE_CROP_SIDE = 128
PROBED_IMAGES = 20


@dataclass
class TablePlan:
    """What ``init`` read from a table: the columns of each role and the class list."""

    table: Path
    id_column: str | None
    label_column: str
    group_column: str | None
    inputs: dict[str, str]  # modality -> column
    kinds: dict[str, str]  # modality -> text | audio | image | video
    classes: list[str]
    n_rows: int
    ignored: list[str]  # short categorical columns (speaker, session, ...): metadata, not inputs
    face_crops: list[str] = field(default_factory=list)  # image modalities whose images are all small crops
    split_sizes: dict[str, int] = field(default_factory=dict)  # rows per split, as written
    split_classes: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> rows
    split_given: bool = False  # the table's own split column decided the splits


def _media_kind(cells: pd.Series) -> str | None:
    """The media kind whose extensions most non-empty cells end with (a majority), else None."""
    filled = [c.strip().lower() for c in cells if c.strip()]
    if not filled:
        return None
    for kind, (extensions, _) in MEDIA_KINDS.items():
        if sum(c.endswith(extensions) for c in filled) > len(filled) / 2:
            return kind
    return None


def _is_text(cells: pd.Series) -> bool:
    """Free text (sentences), as opposed to short codes such as a speaker id or a session number."""
    filled = [c.strip() for c in cells if c.strip()]
    return bool(filled) and sum(" " in c for c in filled) > len(filled) / 2


def plan_table(table: Path, label: str | None = None, group: str | None = None) -> TablePlan:
    """Roles of the columns of a labelled table; a one-line error says what could not be inferred."""
    df = read_table(table)
    if df.empty:
        raise AffectFusionError(f"{table}: the table has no rows")
    label_column = label or next((c for c in df.columns if c.lower() in LABEL_NAMES), None)
    if label_column is None or label_column not in df.columns:
        raise AffectFusionError(
            f"{table}: no label column found (looked for {', '.join(LABEL_NAMES)}; columns: "
            f"{', '.join(df.columns)}); name it with --label COLUMN"
        )
    if group is not None and group not in df.columns:
        raise AffectFusionError(f"{table}: --group {group!r} is not a column (columns: {', '.join(df.columns)})")
    if group is None:  # a column named like a speaker, with enough distinct values to split by
        group = next((c for c in df.columns if c.lower() in GROUP_NAMES and df[c].nunique() >= MIN_GROUPS), None)
    id_column = "id" if "id" in df.columns else None
    inputs: dict[str, str] = {}
    kinds: dict[str, str] = {}
    ignored = []
    for column in df.columns:
        if column in (label_column, group, id_column, "split"):
            continue
        kind = _media_kind(df[column]) or ("text" if _is_text(df[column]) else None)
        if kind is None:
            ignored.append(column)
            continue
        modality = kind if kind not in inputs else f"{kind}_{column}"
        inputs[modality], kinds[modality] = column, kind
    if not inputs:
        raise AffectFusionError(f"{table}: no input column besides the label {label_column!r}")
    labels = df[label_column].str.strip()
    if (labels == "").any():
        rows = ", ".join(str(i + 2) for i in df.index[labels == ""][:10])
        raise AffectFusionError(f"{table}: empty label in line(s) {rows}; every row needs a label")
    classes = sorted(labels.unique())
    crops = [m for m, k in kinds.items() if k == "image" and _face_crops(df[inputs[m]], table.parent)]
    return TablePlan(table, id_column, label_column, group, inputs, kinds, classes, len(df), ignored, crops)


def _face_crops(cells: pd.Series, base: Path) -> bool:
    """Whether the first readable images of a column are all at most FACE_CROP_SIDE a side (headers only)."""
    sides = []
    for cell in [c.strip() for c in cells if c.strip()][:PROBED_IMAGES]:
        try:
            with Image.open(base / cell) as image:
                sides.append(max(image.size))
        except (OSError, ValueError):
            continue
    return bool(sides) and max(sides) <= FACE_CROP_SIDE


def split_rows(df: pd.DataFrame, label: str, group: str | None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Train/dev/test by SPLIT_SHARES: group-disjoint when a group column is given, else stratified by
    label where every class has enough rows, else plain random; a ``split`` column wins if present."""
    if "split" in df.columns and set(df["split"]) >= {"train", "dev"}:
        return {s: df[df["split"] == s] for s in SPLIT_SHARES if (df["split"] == s).any()}
    held_out = SPLIT_SHARES["dev"] + SPLIT_SHARES["test"]
    if group and df[group].nunique() < MIN_GROUPS:
        raise AffectFusionError(
            f"only {df[group].nunique()} distinct {group!r} value(s): keeping groups apart needs at least {MIN_GROUPS}"
        )
    if group:
        outer = GroupShuffleSplit(n_splits=1, test_size=held_out, random_state=seed)
        train_idx, rest_idx = next(outer.split(df, groups=df[group]))
        rest = df.iloc[rest_idx]
        inner = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=seed)
        dev_idx, test_idx = next(inner.split(rest, groups=rest[group]))
        return {"train": df.iloc[train_idx], "dev": rest.iloc[dev_idx], "test": rest.iloc[test_idx]}
    counts = df[label].value_counts()
    stratify = df[label] if counts.min() >= 3 else None
    train, rest = train_test_split(df, test_size=held_out, random_state=seed, stratify=stratify)
    rest_stratify = rest[label] if stratify is not None and rest[label].value_counts().min() >= 2 else None
    dev, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest_stratify)
    return {"train": train, "dev": dev, "test": test}


def write_splits(plan: TablePlan, out_dir: Path, seed: int = 0) -> dict[str, int]:
    """The split tables ``out_dir/<split>.csv``, media paths rewritten relative to ``out_dir``."""
    targets = {(out_dir / f"{s}.csv").resolve() for s in SPLIT_SHARES}
    if plan.table.resolve() in targets:
        raise AffectFusionError(
            f"{plan.table}: init writes train.csv, dev.csv and test.csv itself; rename your table (e.g. data.csv)"
        )
    df = read_table(plan.table)
    base = plan.table.parent
    for modality, column in plan.inputs.items():
        if plan.kinds[modality] == "text":
            continue
        df[column] = [
            os.path.relpath((base / cell.strip()).resolve(), out_dir.resolve()) if cell.strip() else ""
            for cell in df[column]
        ]
    if plan.id_column is None:
        df.insert(0, "id", [f"row{i + 1}" for i in range(len(df))])
    parts = split_rows(df, plan.label_column, plan.group_column, seed)
    plan.split_given = "split" in df.columns and set(df["split"]) >= {"train", "dev"}
    empty = [name for name, part in parts.items() if part.empty]
    if empty:
        raise AffectFusionError(
            f"{plan.table}: too few rows for a {', '.join(empty)} split; add rows or a split column"
        )
    sizes = {}
    for name, part in parts.items():
        part.to_csv(out_dir / f"{name}.csv", index=False)
        sizes[name] = len(part)
        counts = part[plan.label_column].str.strip().value_counts()
        plan.split_classes[name] = {c: int(counts.get(c, 0)) for c in plan.classes}
    plan.split_sizes = sizes
    return sizes


def _extract_line(plan: TablePlan, modality: str) -> str:
    """One ``data.extract`` entry; face images say what happens when no face is found."""
    kind = plan.kinds[modality]
    name = TEXT_EXTRACTOR if kind == "text" else MEDIA_KINDS[kind][1]
    if modality in plan.face_crops:
        return (
            f"    {modality}: {{name: {name}, options: {{no_face: whole_frame}}}}   # the images are face crops "
            f"(<= {FACE_CROP_SIDE} px): read the whole image where no face is detected"
        )
    if kind == "image":
        return (
            f"    {modality}: {{name: {name}, options: {{no_face: error}}}}   # no face found: error names the file; "
            "whole_frame reads the whole image (face crops); missing_modality predicts from the other inputs"
        )
    return f"    {modality}: {{name: {name}}}"


def split_note(plan: TablePlan) -> str:
    """The rows each split got, against the shares asked for (groups kept whole move them)."""
    sizes = ", ".join(f"{k} {v}" for k, v in plan.split_sizes.items())
    if plan.split_given:
        return f"{sizes} rows (the table's split column)"
    asked = "/".join(f"{v:.0%}".rstrip("%") for v in SPLIT_SHARES.values())
    why = f"; each {plan.group_column!r} group stays whole, so the shares differ" if plan.group_column else ""
    return f"{sizes} rows (asked {asked}{why})"


def config_text(plan: TablePlan, name: str, sizes: dict[str, int]) -> str:
    """The starter config, every choice commented."""
    inputs = ", ".join(f"{m}: {c}" for m, c in plan.inputs.items())
    extract = "\n".join(_extract_line(plan, m) for m in plan.inputs)
    group = (
        f"\n    group_column: {plan.group_column}   # rows of one group never cross splits" if plan.group_column else ""
    )
    small = min(sizes.values()) if sizes else 0
    noisy = f"# Note: the smallest split has only {small} rows; numbers on it are noisy." if 0 < small < 30 else ""
    if 0 < sizes.get("dev", 30) < 30:
        noisy += (
            f"\n# Note: dev has only {sizes['dev']} rows: too few to pick epochs on, and `calibrate` and `test "
            "--conformal` refuse it;\n# add rows, or hold out another split and name it in data.calibration_split."
        )
    return f"""# AffectFusion starter config, written by `affectfusion init`
# from {plan.table.name} ({plan.n_rows} rows), split into {split_note(plan)}.
#   affectfusion check-data {CONFIG_FILE}      # optional: leakage, duplicates, imbalance per split
#   affectfusion train {CONFIG_FILE}           # extracts features (cached), trains, scores dev and test
#   affectfusion predict runs/{name} --text "..." --audio clip.wav --image face.jpg
#   affectfusion serve dashboard runs/{name}
# Paths below are relative to this file. Every key: `affectfusion list ...` and the README.
name: {name}
description: "{plan.label_column} from {", ".join(plan.inputs)} ({plan.table.name})"
data:
  adapter: media_table
  root: .                        # folder of the split tables; their media paths are relative to it
  train_split: train
  val_split: dev                 # picks the best epoch
  test_split: test               # scored once after training
  options:
    table: "{{split}}.csv"          # written by init (sizes above); edit or replace freely
    inputs: {{{inputs}}}   # modality -> column (text, or a media path)
    targets: {{{plan.label_column}: {plan.label_column}}}{group}
  extract:                       # raw media -> features, cached in data.cache_dir
{extract}
  bad_media: error               # a missing/corrupt file stops training and names the row; or drop_modality
tasks:
  - name: {plan.label_column}
    type: classification
    classes: [{", ".join(plan.classes)}]
    class_weights: balanced      # rare classes count as much as frequent ones
model:
  hidden_dim: 64
  fusion: {{name: gated}}          # any of: affectfusion list fusions
train:
  epochs: 40
  batch_size: {max(4, min(32, sizes.get("train", 32) // 4 or 4))}
  lr: 0.001
  modality_dropout: 0.1          # robustness to a missing modality at prediction time
  early_stopping: {{patience: 10}}
  seed: 0
{noisy}
"""


TEMPLATE_CONFIG = f"""# AffectFusion starter config, written by `affectfusion init` (template: no table was found).
# 1. Fill {TEMPLATE_TABLE} (one row per sample; media paths relative to this folder; empty cell =
#    modality missing) and save it as data.csv.
# 2. Run `affectfusion init . --table data.csv --force`: it reads your columns and classes, splits
#    the rows into train/dev/test and rewrites this file for them.
# For pre-extracted features instead of media, replace `data` with a feature folder:
#   data:
#     adapter: feature_folder
#     root: features                    # features/manifest.csv: id, split, label, (group)
#     options: {{features: {{text: "text/{{id}}.npy", audio: "audio/{{id}}.npy"}}}}
name: my_data
data:
  adapter: media_table
  root: .
  test_split: test
  options:
    table: "{{split}}.csv"
    inputs: {{text: text, audio: audio, image: image}}
    targets: {{label: label}}
  extract:
    text: {{name: {TEXT_EXTRACTOR}}}
    audio: {{name: {MEDIA_KINDS["audio"][1]}}}
    image: {{name: {MEDIA_KINDS["image"][1]}}}
tasks:
  - {{name: label, type: classification, classes: [happy, sad]}}
"""

TEMPLATE_ROWS = """id,text,audio,image,label
s1,I can't believe we won!,audio/s1.wav,faces/s1.jpg,happy
s2,I miss her so much.,audio/s2.wav,,sad
"""


def write_starter(
    folder: Path, table: Path | None, label: str | None, group: str | None, force: bool
) -> tuple[list[Path], TablePlan | None]:
    """Write the starter files into ``folder``: (files written, what was read from the table, if any).
    Never overwrites a config without ``force``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / CONFIG_FILE
    if config.exists() and not force:
        raise AffectFusionError(f"{config} exists; pass --force to replace it")
    if table is None:
        written_by_init = {TEMPLATE_TABLE, *(f"{s}.csv" for s in SPLIT_SHARES)}
        found = sorted(p for p in folder.glob("*.csv") if p.name not in written_by_init)
        table = found[0] if len(found) == 1 else None
    if table is None:
        (folder / TEMPLATE_TABLE).write_text(TEMPLATE_ROWS, encoding="utf-8")
        config.write_text(TEMPLATE_CONFIG, encoding="utf-8")
        return [config, folder / TEMPLATE_TABLE], None
    plan = plan_table(table, label, group)
    sizes = write_splits(plan, folder)
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in folder.resolve().name) or "my_data"
    config.write_text(config_text(plan, name, sizes), encoding="utf-8")
    return [config, *(folder / f"{s}.csv" for s in sizes)], plan
