"""What every benchmark records about the machine it ran on (timings mean little without it)."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any


def environment() -> dict[str, Any]:
    """Versions, CPUs and the load average, taken when the benchmark starts."""
    import torch

    import affectfusion

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "affectfusion_version": affectfusion.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
