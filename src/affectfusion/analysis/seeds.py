"""Train a config once per seed, and find runs that differ only in their seed.

``train --seeds 1,2,3`` writes ``<out>/seed<k>/`` per seed, or ``<out>/seed<k>/<variant>/`` for a
config with variants. Each of these is an ordinary run directory, so an interrupted sweep resumes
where it stopped and finished runs are skipped. :func:`group_by_variant` recovers the groups from
the resolved ``config.yaml`` files alone. This means ``compare --seeds-aggregate`` also works on runs
trained by hand with ``--set train.seed=k``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from affectfusion.errors import AffectFusionError
from affectfusion.rundir import SeedPaths, read_run_folder

_SEED_SUFFIX = re.compile(r"_seed\d+$")


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``: distinct non-negative integers, else a one-line error."""
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"[0-9]+", p) for p in parts):
        raise AffectFusionError(f"--seeds expects comma-separated non-negative integers, e.g. 1,2,3; got {text!r}")
    seeds = [int(p) for p in parts]
    if len(set(seeds)) != len(seeds):
        raise AffectFusionError(f"--seeds lists a seed twice: {text!r}")
    return seeds


def _identity(config: dict[str, Any]) -> str:
    """The config without what varies between seeds of one variant: seed, name, progress display."""
    config = {k: v for k, v in config.items() if k != "name"}
    config["train"] = {k: v for k, v in (config.get("train") or {}).items() if k not in ("seed", "progress")}
    return json.dumps(config, sort_keys=True, default=str)


def _candidates(config: dict[str, Any], path: Path, root: Path) -> list[str]:
    """Labels from shortest to most specific: variant (else fusion) name, config/variant, run folder."""
    base, _, variant = str(config.get("name") or path.name).partition("/")
    base = _SEED_SUFFIX.sub("", base)
    fusion = ((config.get("model") or {}).get("fusion") or {}).get("name")
    short = _SEED_SUFFIX.sub("", variant) or fusion or base
    folder = "/".join(p for p in path.relative_to(root).parts if not SeedPaths.is_seed_folder(p)) or path.name
    return [short, f"{base}/{short}" if short != base else base, folder]


def _unique_labels(candidates: list[list[str]]) -> list[str]:
    """The shortest candidate of each group. Clashing labels move to the next level, and any clash
    left after the last level gets a ``#2``, ``#3``, ... suffix after its first occurrence."""
    labels = [c[0] for c in candidates]
    for level in range(1, max(len(c) for c in candidates)):
        clashing = {label for label in labels if labels.count(label) > 1}
        labels = [c[level] if label in clashing else label for label, c in zip(labels, candidates, strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return unique


def group_by_variant(run_dirs: list[Path]) -> dict[str, list[Path]]:
    """Group runs whose resolved config.yaml is the same apart from ``train.seed`` and ``name``
    (and the cosmetic ``train.progress``), in order of first appearance and each sorted by seed.

    A group is labelled by its variant or fusion name. When labels clash, the label becomes
    ``config/variant`` and then the run folder without its ``seed<k>`` parts. It is an error if a
    group holds two runs with the same seed, because they could not be paired.
    """
    paths = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))
    if not paths:
        raise AffectFusionError("no run directories to group")
    root = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0].parent
    groups: dict[str, list[tuple[int, Path]]] = {}
    firsts: dict[str, tuple[dict[str, Any], Path]] = {}
    for path in paths:
        run = read_run_folder(path)
        if not run.has_config:
            raise AffectFusionError(f"{path} is not a run directory (no config.yaml)")
        key = _identity(run.config)
        firsts.setdefault(key, (run.config, path))
        groups.setdefault(key, []).append((int((run.config.get("train") or {}).get("seed", 0)), path))
    labels = _unique_labels([_candidates(config, path, root) for config, path in firsts.values()])
    out = {}
    for label, members in zip(labels, groups.values(), strict=True):
        seeds = [s for s, _ in members]
        if len(set(seeds)) != len(seeds):
            dup = next(s for s in seeds if seeds.count(s) > 1)
            same = ", ".join(str(p) for s, p in members if s == dup)
            raise AffectFusionError(f"runs {same} have the same config and seed {dup}; pass only one of them")
        out[label] = [p for _, p in sorted(members, key=lambda m: m[0])]
    return out
