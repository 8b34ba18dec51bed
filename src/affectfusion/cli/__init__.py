"""The ``affectfusion`` command line (``python -m affectfusion.cli`` works too, e.g. under torchrun)."""

from affectfusion.cli.app import app, main

__all__ = ["app", "main"]
