"""Serving a trained run: the Predictor (Python), batch prediction (CLI), REST API and dashboard.

``Prediction``, ``RunPredictor``, ``Predictor`` and ``load_predictor`` are loaded on first use, so
that reading the input limits (``serve.input_limits``, which the CLI needs at start-up) imports no torch.
"""

from __future__ import annotations

from typing import Any

from affectfusion.inputs import INPUT_KINDS

__all__ = ["INPUT_KINDS", "Prediction", "Predictor", "RunPredictor", "load_predictor"]


def __getattr__(name: str) -> Any:
    if name in ("Prediction", "RunPredictor"):
        from affectfusion.serve import base  # the interface: numpy only

        return getattr(base, name)
    if name in ("Predictor", "load_predictor"):
        from affectfusion.serve import predictor  # loads torch and the extractors: only when asked for

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
