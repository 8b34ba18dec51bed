"""The web dashboard (P4's Streamlit app, for any run): ``launch`` starts ``app.py``.

It runs ``streamlit run app.py -- RUN`` with settings that keep it local and quiet: bound
to 127.0.0.1 unless told otherwise, no usage statistics, no browser opened, uploads capped at 50 MB
(P4's limit) and no tracebacks shown to the user. The pages are in ``app.py``, what their buttons do
in ``actions.py``, what they show in ``backends.py`` (``vlm.py``, ``faces.py``, ``usage.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from affectfusion.errors import AffectFusionError
from affectfusion.runkinds import run_kind_of
from affectfusion.serve.ports import check_port

APP_FILE = Path(__file__).with_name("app.py")
DEVICE_ENV = "AFFECTFUSION_DEVICE"  # where the Streamlit process loads the model (set by launch)
MAX_UPLOAD_MB = 50  # P4's limit; Streamlit refuses larger uploads before the app sees them

# -- launching ------------------------------------------------------------------------------------


def streamlit_command(run_dir: Path, host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The ``streamlit run`` command line for a run (also what the browser test starts)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_FILE),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(MAX_UPLOAD_MB),
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "viewer",
        "--theme.base",
        "light",
        "--",
        str(Path(run_dir).resolve()),
    ]


def launch(run_dir: Path, host: str = "127.0.0.1", port: int = 8501, device: str = "cpu") -> None:
    """Serve the dashboard for ``run_dir`` until interrupted; Ctrl-C or SIGTERM stops Streamlit too."""
    run_kind_of(run_dir)  # a wrong folder is a one-line error here, not a page of Streamlit output
    check_port(host, port)
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", DEVICE_ENV: device}
    proc = subprocess.Popen(streamlit_command(run_dir, host, port), env=env)
    stopped = False

    def stop(*_: Any) -> None:
        nonlocal stopped
        stopped = True
        proc.terminate()

    # A service manager stops us with SIGTERM: pass it on rather than leave Streamlit running.
    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        stop()
        code = 0
    finally:
        if proc.poll() is None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code != 0 and not stopped:
        raise AffectFusionError(f"streamlit exited with code {code} (see its output above)")
