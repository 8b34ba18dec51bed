"""The run folder's writer lock: one ``train``/``test``/``calibrate``/``tune`` at a time per folder.

A second writer is refused with a message naming the holder; a lock left by a killed process (its pid is
gone) is taken over. The lock file's name is :attr:`affectfusion.rundir.RunPaths.lock`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from affectfusion.errors import AffectFusionError
from affectfusion.rundir import RunPaths


def pid_alive(pid: int) -> bool:
    """A process with this id runs on this host (owned by us or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def run_lock(run_dir: Path, action: str) -> Iterator[None]:
    """Hold the run folder for one writer (``train``, resume, ``test``); refuse a second one.

    The lock file is written completely under a temporary name and then hard-linked into place,
    which fails if a lock exists, so a lock is never seen half-written. It names its holder; a lock
    left by a killed process on this host (its pid is gone) is taken over.
    """
    path = RunPaths(Path(run_dir)).lock
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "action": action}
    for _ in range(3):
        if _try_link_lock(path, me):
            break
        holder = _read_holder(path)
        if holder is None:  # released between our attempt and the read
            continue
        pid = holder.get("pid")
        if holder.get("host") == me["host"] and isinstance(pid, int) and not pid_alive(pid):
            path.unlink(missing_ok=True)  # stale: its writer was killed
            continue
        raise AffectFusionError(
            f"{run_dir} is in use by another writer ({holder.get('action', '?')}, pid {pid} on "
            f"{holder.get('host', '?')}); wait for it to finish, write to another --out, or delete {path} "
            "if no such process runs"
        )
    else:
        raise AffectFusionError(f"{run_dir}: could not take the run lock {path}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _try_link_lock(path: Path, holder: dict[str, Any]) -> bool:
    tmp = path.with_name(f"{path.name}.{holder['pid']}.tmp")
    tmp.write_text(json.dumps(holder), encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _read_holder(path: Path) -> dict[str, Any] | None:
    """The lock's holder; None if the lock is gone; ``{}`` if it cannot be read."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
