"""Checks a dataset's splits before anyone trusts a number computed on them.

* **Group overlap**: a speaker / video / dialogue in two splits lets a model score by recognising
  the person, not the emotion (speaker-overlapping splits inflate published SER numbers).
* **Duplicates across splits**: exact (content hash of the media file, the text, the feature
  array) and near (normalised text; peak-normalised, coarsely quantised audio; an 8x8 average hash
  of an image; rounded features).
* **Class imbalance** per split, **label shift** between the training split and every other split
  (chi-square test and total variation distance; Kolmogorov-Smirnov for regression targets) and
  **missing-modality rates**.

Group overlap, and duplicate samples (every input identical) in more than ``max_duplicate_share`` of
a split, are *leakage*: ``train`` refuses such splits unless ``data.allow_leakage``
(``--allow-leakage``) is set. The rest, one shared input of a multimodal sample included, are warnings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import chi2_contingency, ks_2samp

from affectfusion.config import RunConfig, TaskConfig
from affectfusion.data import build_adapter
from affectfusion.data.fingerprints import split_fingerprints, whole_sample_prints
from affectfusion.data.shards import split_samples
from affectfusion.data.tasks import class_index, multi_hot
from affectfusion.data.types import Sample, _is_labelled
from affectfusion.errors import AffectFusionError

MAX_DUPLICATE_SHARE = 0.01  # exact duplicates in more than 1 % of a split's samples are leakage
SHIFT_P = 0.01  # label shift flagged when significant at this level ...
SHIFT_TVD = 0.1  # ... and at least this large (total variation distance / KS statistic)
IMBALANCE_RATIO = 10.0  # largest / smallest class count flagged as imbalanced


def duplicates(prints: dict[str, dict[str, dict[str, tuple]]], near: bool) -> list[dict[str, Any]]:
    """Inputs shared by two different splits, per modality and split pair, with example id pairs."""
    index: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for split, samples in prints.items():
        for sid, per_modality in samples.items():
            for m, hashes in per_modality.items():
                h = hashes[1 if near else 0]
                if h is not None:
                    index[(m, h)][split].append(sid)
    ids: dict[tuple[str, str, str], tuple[set[str], set[str], list[list[str]]]] = {}
    for (m, _), by_split in index.items():
        names = [split for split in prints if split in by_split]  # the splits' order: train first
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                in_a, in_b, examples = ids.setdefault((m, a, b), (set(), set(), []))
                in_a.update(by_split[a])
                in_b.update(by_split[b])
                if len(examples) < 5:
                    examples.append([by_split[a][0], by_split[b][0]])
    return [
        {
            "modality": m,
            "splits": [a, b],
            "n": {a: len(in_a), b: len(in_b)},
            "share": {a: len(in_a) / len(prints[a]), b: len(in_b) / len(prints[b])},
            "examples": examples,
        }
        for (m, a, b), (in_a, in_b, examples) in ids.items()
    ]


def group_overlap(splits: dict[str, list[Sample]]) -> list[dict[str, Any]]:
    """Groups (speakers, videos, ...) found in more than one split."""
    groups = {name: {s.group for s in samples if s.group is not None} for name, samples in splits.items()}
    names = list(splits)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(groups[a] & groups[b])
            if shared:
                out.append({"splits": [a, b], "groups": shared[:20], "n_groups": len(shared)})
    return out


def _labels(samples: Sequence[Sample], task: TaskConfig) -> list[Any]:
    """Labelled targets as class indices (classification), multi-hot rows or floats."""
    out: list[Any] = []
    for s in samples:
        v = s.targets.get(task.name)
        if not _is_labelled(v):
            continue
        if task.type == "classification":
            i = class_index(v, task.classes or [])
            if i is not None:
                out.append(i)
        elif task.type == "multilabel":
            try:
                out.append(multi_hot(v, task.classes or []))
            except LookupError:
                continue
        else:
            try:
                out.append(float(v))
            except (TypeError, ValueError):
                continue
    return out


def _counts(labels: list[Any], task: TaskConfig) -> np.ndarray:
    k = len(task.classes or [])
    if task.type == "multilabel":
        return np.sum(labels, axis=0).astype(np.int64) if labels else np.zeros(k, np.int64)
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=k)


def imbalance(labels: dict[str, list[Any]], task: TaskConfig) -> dict[str, dict[str, Any]]:
    """Per split: class counts, the largest/smallest count ratio and classes without samples."""
    out = {}
    for split, y in labels.items():
        counts = _counts(y, task)
        seen = counts[counts > 0]
        ratio = float(seen.max() / seen.min()) if seen.size else None
        out[split] = {
            "counts": dict(zip(task.classes or [], counts.tolist(), strict=True)),
            "ratio": ratio,
            "empty_classes": [c for c, n in zip(task.classes or [], counts, strict=True) if n == 0],
            "imbalanced": ratio is not None and ratio > IMBALANCE_RATIO,
        }
    return out


def label_shift(labels: dict[str, list[Any]], task: TaskConfig, reference: str) -> list[dict[str, Any]]:
    """Every split's label distribution against the reference (training) split."""
    out = []
    ref = labels.get(reference) or []
    for split, y in labels.items():
        if split == reference or not y or not ref:
            continue
        if task.type == "regression":
            res = ks_2samp(ref, y)
            stat, p, measure = float(res.statistic), float(res.pvalue), "ks"
        else:
            table = np.stack([_counts(ref, task), _counts(y, task)])
            table = table[:, table.sum(0) > 0]
            dist = table / table.sum(1, keepdims=True)
            stat, measure = float(0.5 * np.abs(dist[0] - dist[1]).sum()), "tvd"
            p = float(chi2_contingency(table)[1]) if table.shape[1] > 1 else 1.0
        out.append(
            {
                "split": split,
                "reference": reference,
                measure: stat,
                "p_value": p,
                "shifted": p < SHIFT_P and stat >= SHIFT_TVD,
            }
        )
    return out


def missing_rates(splits: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    """Per split and modality, the share of samples without it."""
    modalities = sorted({m for samples in splits.values() for s in samples for m in (*s.raw, *s.features)})
    return {
        name: {m: float(np.mean([m not in s.raw and m not in s.features for s in samples])) for m in modalities}
        for name, samples in splits.items()
    }


def check_splits(
    splits: dict[str, list[Sample]],
    tasks: Sequence[TaskConfig],
    reference: str,
    groups_identify: bool = True,
    max_duplicate_share: float = MAX_DUPLICATE_SHARE,
) -> dict[str, Any]:
    """All checks over already-loaded splits; ``problems`` are one-line messages, ``leaking`` the verdict."""
    prints = split_fingerprints(splits)
    report: dict[str, Any] = {
        "splits": {name: len(samples) for name, samples in splits.items()},
        "group_overlap": group_overlap(splits) if groups_identify else [],
        "groups_identify_sources": groups_identify,
        "duplicate_samples": duplicates(whole_sample_prints(prints), near=False),
        "exact_duplicates": duplicates(prints, near=False),
        "near_duplicates": duplicates(prints, near=True),
        "missing_modality_rates": missing_rates(splits),
        "tasks": {},
    }
    leaks: list[str] = []
    warnings: list[str] = []
    for o in report["group_overlap"]:
        leaks.append(
            f"{o['n_groups']} group(s) in both {o['splits'][0]} and {o['splits'][1]} "
            f"(e.g. {', '.join(map(str, o['groups'][:3]))})"
        )
    for d in report["duplicate_samples"]:
        a, b = d["splits"]
        text = (
            f"{d['n'][b]} {b} sample(s) have exactly the inputs of {a} samples "
            f"({d['share'][b]:.1%} of {b}; e.g. {d['examples'][0][1]} = {d['examples'][0][0]})"
        )
        (leaks if max(d["share"].values()) > max_duplicate_share else warnings).append("duplicate samples: " + text)
    for d in report["exact_duplicates"]:
        a, b = d["splits"]
        warnings.append(
            f"exact duplicates: {d['n'][b]} {b} sample(s) have the same {d['modality']} input as {a} samples "
            f"({d['share'][b]:.1%} of {b}; e.g. {d['examples'][0][1]} = {d['examples'][0][0]})"
        )
    for d in report["near_duplicates"]:
        a, b = d["splits"]
        warnings.append(
            f"near duplicates: {d['n'][b]} {b} sample(s) match {a} samples in {d['modality']} "
            f"after normalisation ({d['share'][b]:.1%} of {b})"
        )
    for task in tasks:
        labels = {name: _labels(samples, task) for name, samples in splits.items()}
        entry: dict[str, Any] = {"type": task.type, "n_labelled": {k: len(v) for k, v in labels.items()}}
        if task.type != "regression":
            entry["imbalance"] = imbalance(labels, task)
            for split, info in entry["imbalance"].items():
                if info["imbalanced"]:
                    warnings.append(
                        f"task {task.name}: {split} is imbalanced (largest/smallest class {info['ratio']:.1f})"
                    )
                if info["empty_classes"] and labels[split]:
                    warnings.append(f"task {task.name}: {split} has no sample of {', '.join(info['empty_classes'])}")
        entry["label_shift"] = label_shift(labels, task, reference)
        for sh in entry["label_shift"]:
            if sh["shifted"]:
                size = sh.get("tvd", sh.get("ks"))
                warnings.append(
                    f"task {task.name}: label distribution of {sh['split']} differs from {reference} "
                    f"(distance {size:.2f}, p = {sh['p_value']:.2g})"
                )
        report["tasks"][task.name] = entry
    for split, rates in report["missing_modality_rates"].items():
        for m, rate in rates.items():
            if rate > 0:
                warnings.append(f"{split}: modality {m} missing in {rate:.1%} of samples")
    report.update(leaking=bool(leaks), leaks=leaks, warnings=warnings)
    return report


def check_data(cfg: RunConfig, splits: Sequence[str] | None = None) -> dict[str, Any]:
    """Load the config's splits (raw, before feature extraction) and check them."""
    adapter = build_adapter(cfg.data)
    root = Path(cfg.data.root).expanduser() if cfg.data.root is not None else None
    if adapter.needs_root and root is None:
        raise AffectFusionError(f"data.root is not set; the {cfg.data.adapter!r} adapter reads a folder")
    if root is not None and not root.exists():
        raise AffectFusionError(f"data.root {str(root)!r} does not exist")
    d = cfg.data
    names = list(
        splits or dict.fromkeys(s for s in (d.train_split, d.val_split, d.calibration_split, d.test_split) if s)
    )
    where = f"{cfg.data.adapter} split {{!r}}" + (f" in {root}" if root else "")
    # raw samples where features are still to be extracted, else the shards training then reads
    loaded = {name: split_samples(cfg.data, adapter, root, name, where.format(name)) for name in names}
    report = check_splits(loaded, cfg.tasks, cfg.data.train_split, getattr(adapter, "groups_identify_sources", True))
    return {"adapter": cfg.data.adapter, "root": None if root is None else str(root), **report}


def guard_leakage(cfg: RunConfig) -> dict[str, Any]:
    """The data check ``train`` runs first: leaking splits are an error unless ``data.allow_leakage``
    (``allowed_by`` credits it; the CLI replaces it with the flag or option that set it)."""
    report = check_data(cfg)
    report["allowed_leakage"] = report["leaking"] and cfg.data.allow_leakage
    if report["allowed_leakage"]:
        report["allowed_by"] = "data.allow_leakage: true"
    if report["leaking"] and not cfg.data.allow_leakage:
        more = f" and {len(report['leaks']) - 1} more" if len(report["leaks"]) > 1 else ""
        raise AffectFusionError(
            f"{cfg.name}: the data splits leak ({report['leaks'][0]}{more}); see `affectfusion check-data`, "
            "or train anyway with --allow-leakage (set data.allow_leakage: true)"
        )
    return report


def check_markdown(report: dict[str, Any]) -> str:
    """The check as a short markdown section (also embedded in the run report)."""
    sizes = ", ".join(f"{k} {v}" for k, v in report["splits"].items())
    verdict = "**LEAKAGE**" if report["leaking"] else "no leakage found"
    lines = [f"Splits: {sizes}. Verdict: {verdict}."]
    if report.get("allowed_leakage"):
        lines.append(
            f"Training went ahead anyway (allowed by `{report.get('allowed_by', 'data.allow_leakage: true')}`)."
        )
    if not report.get("groups_identify_sources", True):
        lines.append("Group overlap not checked: this adapter's groups do not identify speakers or sources.")
    lines += [f"- leak: {x}" for x in report["leaks"]] + [f"- warning: {x}" for x in report["warnings"]]
    for name, entry in report["tasks"].items():
        ratios = ", ".join(
            f"{split} {info['ratio']:.1f}" for split, info in entry.get("imbalance", {}).items() if info["ratio"]
        )
        shifts = ", ".join(
            f"{sh['split']} {sh.get('tvd', sh.get('ks')):.2f} (p = {sh['p_value']:.2g})" for sh in entry["label_shift"]
        )
        parts = [
            f"largest/smallest class {ratios}" if ratios else "",
            f"label shift vs train {shifts}" if shifts else "",
        ]
        lines.append(f"- task {name}: " + "; ".join(p for p in parts if p))
    missing = {s: {m: r for m, r in rates.items() if r > 0} for s, rates in report["missing_modality_rates"].items()}
    if not any(missing.values()):
        lines.append("- every sample has every modality")
    return "\n".join(lines)
