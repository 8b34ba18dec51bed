"""Scoring (metrics), run reports, plots and run comparisons.

Import the submodules directly: this package imports nothing, so reading a metric does not load
matplotlib.
"""
