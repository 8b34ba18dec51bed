"""Serving a trained run: the Predictor (Python), batch prediction (CLI), REST API and dashboard."""

from affectfusion.serve.predictor import INPUT_KINDS, Prediction, Predictor, load_predictor

__all__ = ["INPUT_KINDS", "Prediction", "Predictor", "load_predictor"]
