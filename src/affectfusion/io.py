"""File I/O for run folders and caches: every file is written whole or not at all.

A run folder is read while training is still writing it (report, compare, a second terminal), so
each writer goes to a hidden temp file in the target's folder and is renamed over the target with
``os.replace`` (atomic on one filesystem). Only the epoch log is appended in place.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeGuard

import numpy as np

from affectfusion.errors import AffectFusionError

if TYPE_CHECKING:  # write_csv takes a DataFrame; the figure helper imports this module without pandas
    import pandas as pd


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_file(path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Yield an open temp file next to ``path``; on success it is synced and renamed to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        if is_disk_full(e):
            raise disk_full(e, path) from None
        raise
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should be as readable as any file
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full(e, path) from None
        raise


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types only: numpy scalars/arrays become Python ones, NaN/inf become None.

    JSON has no NaN; writing ``null`` keeps the files readable by any tool.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False)
    write_text(path, text + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    # pandas wants newline="" on text handles, or rows get doubled line ends on Windows.
    with atomic_file(path, "w", encoding="utf-8", newline="") as f:
        df.to_csv(f, index=False)


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AffectFusionError(f"file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise AffectFusionError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from None


def read_jsonl(path: Path) -> list[dict]:
    """One object per line. A torn last line (a crash mid-append) is dropped; elsewhere it is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AffectFusionError(f"file not found: {path}") from None
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise AffectFusionError(f"{path} line {i + 1} is not valid JSON ({e.msg})") from None
    return records


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one line and sync it, so a crash loses at most the line being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(to_jsonable(obj), allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:  # a full disk: cut the torn line, so the next append starts a clean one
            os.ftruncate(fd, size)
            if is_disk_full(e):
                raise disk_full(e, path) from None
            raise
    finally:
        os.close(fd)


def is_disk_full(e: BaseException) -> TypeGuard[OSError]:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(e: OSError, path: Path | str | None) -> AffectFusionError:
    """A full disk (or quota) as one line naming the file that could not be written."""
    where = path or e.filename or "a file"
    return AffectFusionError(
        f"no space left on the device to write {where} ({e.strerror or e}); free some space and run the "
        "same command again (nothing half-written was kept; a training run resumes from its last checkpoint)"
    )


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 4 MiB chunks (checkpoints and model files can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
