"""Serving a trained run: the Predictor (Python), batch prediction (CLI), REST API and dashboard."""

from affectfusion.serve.base import Prediction, RunPredictor
from affectfusion.serve.inputs import INPUT_KINDS
from affectfusion.serve.predictor import Predictor, load_predictor

__all__ = ["INPUT_KINDS", "Prediction", "Predictor", "RunPredictor", "load_predictor"]
