"""Quiet serving logs: the alarming but harmless noise of the face libraries, silenced once per process.

MediaPipe 0.10's bindings print ``AttributeError: 'MessageFactory' object has no attribute
'GetPrototype'`` when imported with protobuf 5 (nothing is broken: the attribute was renamed);
TFLite/absl log ``INFO`` lines; and torch warns about non-writable arrays that serving never writes
to. A server log should show requests and real problems, so serving entry points (the API app, the
dashboard, ``predict``) call :func:`quiet_native_logs` before the first input is read.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import warnings

NOISE = ("GetPrototype",)


def quiet_native_logs() -> None:
    """Set the native libraries' log levels and import MediaPipe with its known stderr line dropped."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TFLite / LiteRT: warnings and up
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's glog: errors only
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
    if "mediapipe" in sys.modules or importlib.util.find_spec("mediapipe") is None:
        return
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        import mediapipe  # noqa: F401  (optional face detector: imported here only to drop its import-time line)
    kept = [line for line in buf.getvalue().splitlines() if not any(n in line for n in NOISE)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
