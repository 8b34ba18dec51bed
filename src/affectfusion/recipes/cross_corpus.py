"""Score a trained run on another corpus of the same modality through a label map.

Both label spaces are mapped into the map's common classes. The model's probability for a common
class is the sum over its own classes that map to it; its prediction is the most probable common
class it can express. Everything that does not map is reported, never silently dropped: the run's
classes without a counterpart (their probability mass is set aside), the corpus labels without
one (those samples are not scored) and common classes the corpus has but the model cannot predict.

The target corpus is read with the run's adapter if it can, else with the first adapter of the
same family (same options class, e.g. the audio-manifest adapters) that can; its features come
from the run's extractors, so the model sees exactly what it was trained on.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.config import RunConfig, TaskConfig, apply_overrides, validate
from affectfusion.data import DATASETS, DatasetAdapter, build_adapter
from affectfusion.data.label_maps import LabelMap
from affectfusion.data.types import MultimodalDataset, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import classification_metrics
from affectfusion.io import write_json
from affectfusion.pipeline import extract_features
from affectfusion.rundir import LoadedRun
from affectfusion.training.loading import load_model
from affectfusion.training.predict import predict


def _options_family(cls: type[DatasetAdapter]) -> type:
    """The options base class shared by an adapter family (RAVDESS, EmoDB, audio_folder, ...): the most
    generic class between the adapter's options and the interface's."""
    bases = [
        b for b in cls.Options.__mro__ if issubclass(b, DatasetAdapter.Options) and b is not DatasetAdapter.Options
    ]
    return bases[-1]


def load_target(cfg: RunConfig, root: Path, split: str, adapter: str | None) -> tuple[RunConfig, list[Sample]]:
    """The target corpus' raw samples and the config that read them (run options kept where they fit)."""
    own = cfg.data.adapter
    family = _options_family(DATASETS.get(own))
    names = [adapter] if adapter else [own, *(n for n in DATASETS.names() if n != own)]
    errors = []
    for name in names:
        cls = DATASETS.get(name)
        if not adapter and name != own and _options_family(cls) is not family:
            continue
        options = {k: v for k, v in cfg.data.options.items() if k in cls.Options.model_fields and k != "targets"}
        if name == own:
            options = dict(cfg.data.options)
        try:
            target_cfg = validate(
                apply_overrides(cfg.to_dict(), {"data.adapter": name, "data.options": options, "data.root": str(root)})
            )
            return target_cfg, build_adapter(target_cfg.data).load(root, split)
        except AffectFusionError as e:
            errors.append(f"{name}: {e}")
    raise AffectFusionError(f"no dataset adapter reads split {split!r} of {root} ({'; '.join(errors)})")


def map_run_classes(task: TaskConfig, label_map: LabelMap) -> tuple[np.ndarray, list[str]]:
    """[K_run, K_common] 0/1 matrix summing run-class probabilities into common classes; unmapped run classes."""
    classes = task.classes or []
    matrix = np.zeros((len(classes), len(label_map.classes)))
    for i, c in enumerate(classes):
        common = label_map.map(c)
        if common is not None:
            matrix[i, label_map.classes.index(common)] = 1.0
    return matrix, label_map.unmapped(classes)


def cross_corpus_eval(
    run: LoadedRun,
    root: str | Path,
    label_map: LabelMap,
    split: str,
    adapter: str | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Score ``run``'s primary classification task on ``split`` of the corpus at ``root``; writes ``out``."""
    task = next((t for t in run.config.tasks if t.type == "classification"), None)
    if task is None:
        raise AffectFusionError("cross-corpus evaluation needs a single-label classification task in the run")
    root = Path(root).expanduser()
    if not root.exists():
        raise AffectFusionError(f"--data {str(root)!r} does not exist")
    cfg, samples = load_target(run.config, root, split, adapter)
    labels = {s.id: s.targets.get(task.name) for s in samples}
    data_labels = Counter(str(v) for v in labels.values() if v is not None)
    for s in samples:
        s.targets = {}  # the target corpus' labels are not in the run's class list; scored after mapping
    where = f"{cfg.data.adapter} split {split!r} in {root}"
    if cfg.data.extract:
        samples = extract_features(cfg, samples, where)
    for s in samples:
        s.features = {m: x for m, x in s.features.items() if m in run.modalities}
    dataset = MultimodalDataset([s for s in samples if s.features], modalities=run.modalities, name=where)
    preds = predict(load_model(run), dataset, run.scalers)
    matrix, unmapped_run = map_run_classes(task, label_map)
    reachable = np.flatnonzero(matrix.sum(0) > 0)
    if reachable.size == 0:
        raise AffectFusionError(f"label map {label_map.name!r} maps none of the run's classes {task.classes}")
    common_proba = preds.proba[task.name] @ matrix
    truth = [label_map.map(labels[i]) for i in preds.ids]
    truth_idx = np.array([-1 if t is None else label_map.classes.index(t) for t in truth])
    scorable = np.isin(truth_idx, reachable)
    classes = [label_map.classes[k] for k in reachable]
    y = np.searchsorted(reachable, truth_idx[scorable])
    pred = common_proba[scorable][:, reachable].argmax(1)
    unreachable = Counter(t for t, ok in zip(truth, scorable, strict=True) if t is not None and not ok)
    result = {
        "run": str(run.paths.root),
        "data": str(root),
        "adapter": cfg.data.adapter,
        "split": split,
        "task": task.name,
        "label_map": label_map.name,
        "classes": classes,
        "n_samples": len(preds.ids),
        "n_scored": int(scorable.sum()),
        "unmapped_run_classes": unmapped_run,
        "unmapped_data_labels": {lab: n for lab, n in data_labels.items() if label_map.map(lab) is None},
        "unpredictable_common_classes": dict(unreachable),
        "data_labels": dict(data_labels),
        "metrics": classification_metrics(y, pred, classes),
        "mass_on_unmapped_classes": float(1.0 - common_proba.sum(1).mean()),
    }
    if out is not None:
        write_json(out, result)
    return result
