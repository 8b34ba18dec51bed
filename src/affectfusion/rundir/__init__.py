"""The run directory: every file and folder name of a run (and of the folders that hold runs) and the readers.

``train`` writes a run; ``test``, ``compare``, ``analyze``, ``predict`` and ``serve`` read it back
through this package only, so a file name lives in :mod:`affectfusion.rundir.paths` and nowhere else
(``tests/test_rundir_names.py`` holds the rest of ``src/`` to that). The writer's lock:
:mod:`affectfusion.runlock`.
"""

from affectfusion.rundir.paths import (
    HTML_REPORT,
    MLFLOW_STORE,
    RUNS,
    AblationPaths,
    ComparisonPaths,
    CvPaths,
    RunPaths,
    SeedAggregatePaths,
    SeedPaths,
    SpecialistsPaths,
    SweepPaths,
    TunePaths,
    default_run_dir,
)
from affectfusion.rundir.read import (
    LoadedRun,
    RunFolder,
    declared_kind,
    enclosing_tune,
    is_cv,
    is_run,
    is_tune,
    read_metrics,
    read_run,
    read_run_folder,
    run_dirs,
    run_dirs_or_none,
)

__all__ = [
    "HTML_REPORT",
    "MLFLOW_STORE",
    "RUNS",
    "AblationPaths",
    "ComparisonPaths",
    "CvPaths",
    "LoadedRun",
    "RunFolder",
    "RunPaths",
    "SeedAggregatePaths",
    "SeedPaths",
    "SpecialistsPaths",
    "SweepPaths",
    "TunePaths",
    "declared_kind",
    "default_run_dir",
    "enclosing_tune",
    "is_cv",
    "is_run",
    "is_tune",
    "read_metrics",
    "read_run",
    "read_run_folder",
    "run_dirs",
    "run_dirs_or_none",
]
