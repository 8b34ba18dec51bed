"""What the dashboard's buttons do, apart from drawing: save uploads, predict, collect errors.

Streamlit-free, so tests call these directly. Every prediction call is guarded: bad input becomes a
readable message, never a traceback. Uploads are written to a temporary folder only for the
duration of one prediction, and checked against the run's decoded-work limits (by the predictor,
from the file headers) before anything is decoded.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from affectfusion.errors import AffectFusionError
from affectfusion.serve.dashboard.backends import Analysis, Backend, InputSlot, safe_relative

log = logging.getLogger("affectfusion.dashboard")
T = TypeVar("T")


def guarded(fn: Callable[[], T], what: str) -> tuple[T | None, str | None]:
    """``fn()`` or a readable message: user errors as they are, anything else as a one-line summary.

    The full traceback of an unexpected error goes to the server log, not to the page.
    """
    try:
        return fn(), None
    except AffectFusionError as e:
        return None, str(e)
    except Exception as e:
        log.exception("dashboard: %s failed", what)
        first = str(e).splitlines()[0] if str(e) else ""
        return None, f"{what} failed: {type(e).__name__}{': ' + first if first else ''}"


def save_upload(upload: Any, folder: Path, relative: str | None = None) -> Path:
    """Write an uploaded file under ``folder`` (at ``relative`` or its own name) and return the path."""
    path = folder / safe_relative(relative or upload.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(upload.getvalue())
    return path


def check_type(slot: InputSlot, name: str) -> None:
    """Uploads are not filtered by the widgets (see ``analyse_page``): a wrong extension is refused here."""
    suffix = Path(name).suffix.lower().lstrip(".")
    if slot.file_types and suffix not in slot.file_types:
        allowed = "/".join(t.upper() for t in slot.file_types)
        raise AffectFusionError(f"{name}: {slot.kind} input must be a {allowed} file")


def strip_folder(text: str, folder: Path) -> str:
    """Messages name uploads relative to the temporary upload folder, as the user named them."""
    return text.replace(f"{folder}{os.sep}", "")


def run_analysis(backend: Backend, values: dict[str, Any]) -> Analysis:
    """One prediction from the Analyse form: slot key -> text or an uploaded file (or None)."""
    slots = {s.key: s for s in backend.slots()}
    with tempfile.TemporaryDirectory(prefix="affectfusion-dashboard-") as tmp:
        folder = Path(tmp)

        def predict() -> Analysis:
            inputs: dict[str, str] = {}
            for key, value in values.items():
                if value is None or (isinstance(value, str) and not value.strip()):
                    continue
                if isinstance(value, str):
                    inputs[key] = value
                else:
                    check_type(slots[key], value.name)
                    name = safe_relative(value.name).name
                    taken = (folder / name).exists()  # two inputs with one file name: keep both
                    inputs[key] = str(save_upload(value, folder / key if taken else folder, name))
            if not inputs:
                wanted = ", ".join(s.label for s in slots.values())
                raise AffectFusionError(f"nothing to analyse: give at least one input ({wanted})")
            return backend.analyse(inputs)

        analysis, error = guarded(predict, "analysis")
        if analysis is None:
            return Analysis(error=strip_folder(error or "", folder))
        if analysis.error:
            analysis.error = strip_folder(analysis.error, folder)
        return analysis


@dataclass
class BatchResult:
    table: pd.DataFrame | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def csv(self) -> bytes:
        """The predictions CSV, written as ``affectfusion predict --batch`` writes it."""
        return b"" if self.table is None else self.table.to_csv(index=False).encode("utf-8")

    @property
    def failed(self) -> int:
        return 0 if self.table is None else int((self.table["error"] != "").sum())


def _finish(table: pd.DataFrame, folder: Path) -> pd.DataFrame:
    table = table.copy()
    table["error"] = [strip_folder(str(e), folder) for e in table["error"]]
    return table


def run_file_batch(backend: Backend, slot: InputSlot, uploads: Sequence[Any]) -> BatchResult:
    """Many uploaded files of one kind -> one prediction row per file (id = file name)."""
    if not uploads:
        return BatchResult(error=f"upload one or more files ({slot.label})")
    with tempfile.TemporaryDirectory(prefix="affectfusion-dashboard-") as tmp:
        folder = Path(tmp)

        def predict() -> pd.DataFrame:
            names: list[str] = []
            for upload in uploads:
                check_type(slot, upload.name)
                name = safe_relative(upload.name).name
                if name in names:
                    raise AffectFusionError(f"{name} was uploaded twice; file names become row ids and must be unique")
                names.append(name)
                save_upload(upload, folder, name)
            return backend.predict_files(slot, [folder / n for n in names], names)

        table, error = guarded(predict, "batch prediction")
        if table is None:
            return BatchResult(error=strip_folder(error or "", folder))
        return BatchResult(_finish(table, folder))


def run_table_batch(backend: Backend, table_upload: Any, media: Sequence[Any]) -> BatchResult:
    """A CSV/JSONL table + the files it references -> predictions for every row.

    A file cell is matched to the uploaded file of the same name and placed at the cell's relative
    path, so rows read exactly as ``affectfusion predict --batch TABLE`` reads them next to the table.
    """
    from affectfusion.data.media_table import read_table  # pandas readers: only for a table batch

    if table_upload is None:
        return BatchResult(error="upload a CSV or JSONL table of inputs")
    with tempfile.TemporaryDirectory(prefix="affectfusion-dashboard-") as tmp:
        folder = Path(tmp)
        warnings: list[str] = []

        def predict() -> pd.DataFrame:
            suffix = Path(table_upload.name).suffix.lower()
            if suffix not in (".csv", ".jsonl"):
                raise AffectFusionError(f"{table_upload.name}: the table must be a .csv or .jsonl file")
            table_path = save_upload(table_upload, folder, f"table{suffix}")
            df = read_table(table_path)
            if df.empty:
                raise AffectFusionError(f"{table_upload.name}: the table has no rows")
            uploaded = {safe_relative(u.name).name: u for u in media}
            missing: list[str] = []
            used: set[str] = set()
            for col in backend.file_columns(list(df.columns)):
                # Cells become paths inside the upload folder: a table must not make the server read
                # its own files (an absolute path, ``../..``); relative cells stay as written.
                df[col] = [str(safe_relative(cell)) if cell else "" for cell in df[col]]
                for cell in df[col]:
                    if not cell:
                        continue
                    rel = safe_relative(cell)
                    upload = uploaded.get(rel.name)
                    if upload is None:
                        missing.append(cell)
                        continue
                    used.add(rel.name)
                    if not (folder / rel).exists():
                        save_upload(upload, folder, str(rel))
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                warnings.append(f"{len(missing)} file(s) named in the table were not uploaded: {shown}")
            unused = sorted(set(uploaded) - used)
            if unused:
                warnings.append(f"{len(unused)} uploaded file(s) are not named in the table: {', '.join(unused[:5])}")
            return backend.predict_table(df, folder)

        table, error = guarded(predict, "batch prediction")
        if table is None:
            return BatchResult(error=strip_folder(error or "", folder), warnings=warnings)
        return BatchResult(_finish(table, folder), warnings=warnings)
