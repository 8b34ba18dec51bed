"""Where uploads wait while a request is served: one temp folder per item, named for the serving process.

A server killed mid-request (kill -9, out of memory) cannot delete its folders; the next server to start
finds them by the dead process id in their names and deletes them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from affectfusion.runlock import pid_alive

UPLOAD_PREFIX = "affectfusion-upload-"  # + "<pid>-" + a random part


def remove_stale_uploads(folder: str | Path | None = None) -> list[Path]:
    """Delete the upload folders in ``folder`` (default: the temp dir) of processes that no longer run;
    a live server's folders are left alone."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*"):
        pid = path.name.removeprefix(UPLOAD_PREFIX).split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
