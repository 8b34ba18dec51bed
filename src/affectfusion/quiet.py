"""Quiet by default: native libraries' start-up chatter kept off the user's terminal.

MediaPipe, TFLite and absl write to file descriptor 2 from C++ ("Created TensorFlow Lite XNNPACK
delegate", "All log messages before absl::InitializeLog()", protobuf's harmless ``GetPrototype``
AttributeError), where Python's logging cannot reach them. Their model loading runs inside
:func:`native_output_silenced`; ``--verbose`` (``AFFECTFUSION_VERBOSE=1``) shows everything.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

VERBOSE_ENV = "AFFECTFUSION_VERBOSE"
_lock = threading.RLock()  # the redirect is process-wide: one at a time (nesting is fine)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while a native library loads (errors still raise in Python)."""
    if verbose():
        yield
        return
    with _lock:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
