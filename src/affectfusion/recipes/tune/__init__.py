"""Hyperparameter search (``affectfusion tune``): Optuna over a config's ``search:`` space."""

from affectfusion.recipes.tune.run import TuneOptions, tune

__all__ = ["TuneOptions", "tune"]
