"""Scoring, run-folder files, reports and run comparisons."""

from affectfusion.evaluation.compare import compare_runs, format_table
from affectfusion.evaluation.metrics import (
    METRIC_DIRECTION,
    available_metrics,
    best_epoch,
    classification_metrics,
    default_monitor,
    history_value,
    metric_mode,
    metric_value,
    regression_metrics,
    summarize,
    task_metrics,
)
from affectfusion.evaluation.plots import (
    plot_comparison,
    plot_confusion_matrix,
    plot_training_curves,
    save_figure,
)
from affectfusion.evaluation.report import RunFolder, load_run, plot_run, write_run_report
from affectfusion.io import (
    append_jsonl,
    atomic_file,
    read_json,
    read_jsonl,
    to_jsonable,
    write_csv,
    write_json,
    write_text,
)

__all__ = [
    "METRIC_DIRECTION",
    "RunFolder",
    "append_jsonl",
    "atomic_file",
    "available_metrics",
    "best_epoch",
    "classification_metrics",
    "compare_runs",
    "default_monitor",
    "format_table",
    "history_value",
    "load_run",
    "metric_mode",
    "metric_value",
    "plot_comparison",
    "plot_confusion_matrix",
    "plot_run",
    "plot_training_curves",
    "read_json",
    "read_jsonl",
    "regression_metrics",
    "save_figure",
    "summarize",
    "task_metrics",
    "to_jsonable",
    "write_csv",
    "write_json",
    "write_run_report",
    "write_text",
]
