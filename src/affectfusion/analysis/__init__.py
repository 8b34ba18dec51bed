"""Analyses of trained runs: separability, failure cases, ablation, robustness, seeds."""
