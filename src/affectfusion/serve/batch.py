"""Batch prediction: a CSV/JSONL table of inputs -> one prediction row per input.

Columns are input kinds (``text``, ``audio``, ``image``, ``video``, ``signal``) or modality names;
an optional ``id`` column names the rows; the run's target and group columns (the labels of a test
split, e.g. ``label``) are ignored and its own column names mapped, so a split's table predicts as it is.
Empty cells mean "not given", so rows may carry any subset of modalities. File paths are relative
to the table's folder. A row that cannot be used gets its reason in the ``error`` column; the rest
completes. Every run kind goes through the same functions (the dashboard's batch tab too).

A table with ``group`` and ``order`` columns (and optionally ``speaker``) holds conversations: a run
with a context stage reads each row with the other rows of its group, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from affectfusion.data.media_table import read_table
from affectfusion.errors import AffectFusionError
from affectfusion.serve.base import Prediction, RunPredictor, Turn

CHUNK = 32  # rows per model call: the extractors and the model see batches, not single rows
CONVERSATION_COLUMNS = ("group", "order", "speaker")


def table_inputs(predictor: RunPredictor, df: pd.DataFrame, base: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Row ids and input mappings; media paths resolved against ``base``, empty cells dropped.

    A table of the run's own data reads as it is: its input columns are renamed as the run's data
    config maps them (``image <- photo``), its targets and group column are ignored.
    """
    renames, ignored = predictor.table_columns()
    accepted = {*predictor.modalities, *(k for k in predictor.accepted_inputs if k != "features")}
    df = df.rename(columns={c: m for c, m in renames.items() if c in df.columns and m not in df.columns})
    ignored = ignored - accepted
    if "group" in df.columns:  # a conversation table: these columns place rows, they are no inputs
        ignored = ignored | set(CONVERSATION_COLUMNS)
    columns = [c for c in df.columns if c != "id" and c not in ignored]
    unknown = [c for c in columns if c not in accepted]
    if unknown:
        raise AffectFusionError(
            f"unknown column(s) {', '.join(unknown)}; columns are id, any of {', '.join(sorted(accepted))}"
            + (f" (and {', '.join(sorted(ignored))}, ignored)" if ignored else "")
        )
    ids = [str(v) if v else str(i) for i, v in enumerate(df["id"])] if "id" in df.columns else None
    inputs = []
    for row in df[columns].to_dict(orient="records"):
        item: dict[str, Any] = {}
        for key, value in row.items():
            if value == "":
                continue
            kind = predictor.input_kind(key) if key in predictor.modalities else key
            item[str(key)] = value if kind == "text" else str(base / value)
        inputs.append(item)
    return ids or [str(i) for i in range(len(df))], inputs


def table_turns(df: pd.DataFrame, path: Path) -> list[Turn] | None:
    """Each row's (group, order, speaker) if the table has a ``group`` column, else None."""
    if "group" not in df.columns:
        return None
    if "order" not in df.columns:
        raise AffectFusionError(f"{path}: a 'group' column needs an 'order' column (each row's position in it)")
    turns: list[Turn] = []
    for i, row in enumerate(df.to_dict(orient="records")):
        try:
            order = int(row["order"])
        except ValueError:
            raise AffectFusionError(f"{path}: row {i + 1} order {row['order']!r} is not an integer") from None
        turns.append((row["group"] or None, order, row.get("speaker") or None))
    return turns


def predict_rows(
    predictor: RunPredictor,
    ids: list[str],
    inputs: list[dict[str, Any]],
    progress: bool = True,
    turns: list[Turn] | None = None,
) -> list[Prediction]:
    """Predictions in chunks (whole conversations when ``turns`` are given), with a progress bar on stderr."""
    out: list[Prediction] = []
    columns = (
        TextColumn("predicting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("predict", total=len(inputs))
        if turns is not None and predictor.supports_conversation:  # other run kinds have no context
            rows: dict[Any, list[int]] = {}
            for k, turn in enumerate(turns):
                rows.setdefault(turn[0] if turn[0] is not None else ("row", k), []).append(k)
            found: dict[int, Prediction] = {}
            for group in rows.values():
                part = [inputs[k] for k in group]
                preds = predictor.predict_conversation(
                    part, [ids[k] for k in group], [turns[k][2] for k in group], order=[turns[k][1] for k in group]
                )
                found.update(zip(group, preds, strict=True))
                bar.advance(task, len(group))
            return [found[k] for k in range(len(inputs))]
        for lo, hi in _chunks(len(inputs)):
            out.extend(predictor.predict(inputs[lo:hi], ids[lo:hi]))
            bar.advance(task, hi - lo)
    return out


def predictions_table(predictions: list[Prediction]) -> pd.DataFrame:
    """The flat CSV form: id, modalities used, per task label/value and probabilities, weights, error.

    Face counts stay integers where some rows read no face (pandas' nullable Int64, an empty cell there).
    """
    df = pd.DataFrame([p.to_row() for p in predictions])
    for column in df.columns:
        if column.endswith(("face_count", "face_used")):
            df[column] = df[column].astype("Int64")
    return df[[c for c in df.columns if c != "error"] + ["error"]]


def predict_table(predictor: RunPredictor, path: Path, progress: bool = True) -> pd.DataFrame:
    """Read a table of inputs and predict every row.

    The table's columns that are no inputs (a test split's ``label``, its group) come along after the
    id, so predictions sit next to them; one whose name a prediction column takes becomes ``input_<name>``.
    """
    df = read_table(path)
    if df.empty:
        raise AffectFusionError(f"{path}: the table has no rows")
    ids, inputs = table_inputs(predictor, df, path.parent)
    out = predictions_table(predict_rows(predictor, ids, inputs, progress, table_turns(df, path)))
    renames, _ = predictor.table_columns()
    inputs_given = {*predictor.modalities, *predictor.accepted_inputs, *renames, "id"}
    kept = [c for c in df.columns if c not in inputs_given]  # anything else was refused by table_inputs
    carried = df[kept].rename(columns={c: f"input_{c}" for c in kept if c in out.columns}).reset_index(drop=True)
    return pd.concat([out[["id"]], carried, out.drop(columns="id")], axis=1)


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, CHUNK):
        yield lo, min(lo + CHUNK, n)
