"""Specialists, then fusion (P3): one model per modality trained alone, its frozen embeddings fused.

A ``kind: specialists`` config shares ``data`` and ``tasks`` between three stages, each an ordinary
:class:`~affectfusion.config.RunConfig` trained by the one :class:`Trainer`:

1. ``specialists.<m>``: a unimodal model (``model.modalities: [m]``) trained and evaluated only on
   the samples that have modality m (P3: the image specialist never sees a text-only post).
2. Export: every split is run through each specialist's best checkpoint; its pooled encoder output
   (the specialist's ``hidden_dim``) is written as a ``feature_folder`` dataset - ``manifest.csv``
   plus ``<m>_<split>.npz`` (sample id -> embedding) - with ``provenance.json`` naming the checkpoint
   (and its SHA-256) each modality came from. A sample without m simply has no m entry.
3. ``fusion``: a model over those embeddings, trained with modality dropout (default 0.3) so that
   any subset of modalities works. The specialists are frozen by construction: fusion only reads
   the exported files.

Finally every presence pattern of the validation and test splits (text-only, text+image,
text+video, ...) is scored separately, for the fusion and for each specialist that covers it.

Layout of ``<out>``: ``config.yaml`` (resolved), ``specialists/<m>/`` and ``fusion/`` (normal run
directories: ``affectfusion test/analyze`` work on them), ``embeddings/`` and ``subsets/``
(``subsets.csv``, ``subsets.json``, ``subsets.md``). Re-running resumes: finished specialists are
skipped, embeddings are re-exported only when a specialist checkpoint changed (then the fusion is
retrained from scratch), an interrupted fusion continues from its last epoch.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, ValidationError, model_validator
from rich.console import Console
from rich.table import Table

import affectfusion
from affectfusion.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    Strict,
    TaskConfig,
    TrainConfig,
    apply_overrides,
    format_validation_error,
    load_raw,
    resolve_config_path,
    validate,
)
from affectfusion.data.types import MultimodalDataset
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import default_monitor, metric_mode
from affectfusion.evaluation.report import fmt_value, markdown_table
from affectfusion.io import atomic_file, read_json, write_csv, write_json, write_text
from affectfusion.pipeline import config_modalities, load_dataset
from affectfusion.rundir import LoadedRun, RunPaths, read_run
from affectfusion.training.predict import Predictions, predict, score
from affectfusion.training.trainer import (
    Trainer,
    load_model,
)

KIND = "specialists"
MANIFEST = "manifest.csv"
PROVENANCE = "provenance.json"
FUSION_EMBEDDINGS = "embeddings.json"  # in the fusion run: which export it was trained on
EXPORT_FORMAT = 1  # bump when the exported files change meaning; a new value forces a re-export


# -- config ----------------------------------------------------------------------------------


class SpecialistConfig(Strict):
    """One modality's model, trained alone (``model.modalities`` is set to that modality)."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class FusionTrainConfig(TrainConfig):
    """Training of the fusion stage: as any run, but modality dropout defaults to P3's 0.3."""

    modality_dropout: float = Field(0.3, ge=0.0, lt=1.0)


class FusionStageConfig(Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: FusionTrainConfig = Field(default_factory=FusionTrainConfig)


class SpecialistsConfig(Strict):
    """A ``kind: specialists`` config: shared data and tasks, one specialist per modality, a fusion."""

    kind: Literal["specialists"]
    name: str
    description: str = ""
    data: DataConfig
    tasks: list[TaskConfig] = Field(min_length=1)
    specialists: dict[str, SpecialistConfig] = Field(min_length=1, description="modality -> its specialist")
    fusion: FusionStageConfig = Field(default_factory=FusionStageConfig)

    @model_validator(mode="after")
    def _check_modalities(self) -> SpecialistsConfig:
        for m, spec in self.specialists.items():
            if spec.model.modalities not in (None, [m]):
                raise ValueError(
                    f"specialists.{m}.model.modalities must be left out (it is [{m}]), got {spec.model.modalities}"
                )
        wanted = self.fusion.model.modalities
        if wanted is not None:
            unknown = [m for m in wanted if m not in self.specialists]
            if unknown or not wanted:
                raise ValueError(
                    f"fusion.model.modalities names {', '.join(unknown) or 'nothing'}; "
                    f"expected some of the specialists: {', '.join(self.specialists)}"
                )
        return self

    @property
    def modalities(self) -> list[str]:
        """The fused modalities, in the config's specialist order."""
        wanted = self.fusion.model.modalities
        return [m for m in self.specialists if wanted is None or m in wanted]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_specialists_config(config: str | Path, overrides: dict[str, Any] | None = None) -> SpecialistsConfig:
    """Read, override (dotted ``--set`` keys) and validate a specialists config, including the
    RunConfig of every stage, so a mistake surfaces before anything trains."""
    path = resolve_config_path(config)
    raw = apply_overrides(load_raw(path), overrides or {})
    try:
        cfg = SpecialistsConfig.model_validate(raw)
    except ValidationError as e:
        raise AffectFusionError(format_validation_error(e, str(path))) from None
    for m in cfg.specialists:
        specialist_run_config(cfg, m)
    fusion_run_config(cfg, Path("embeddings"))
    return cfg


def _stage_raw(cfg: SpecialistsConfig, name: str, model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    return {
        "name": f"{cfg.name}/{name}",
        "description": cfg.description,
        "data": cfg.data.model_dump(mode="json"),
        "tasks": [t.model_dump(mode="json") for t in cfg.tasks],
        "model": model.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
    }


def specialist_run_config(cfg: SpecialistsConfig, modality: str) -> RunConfig:
    spec = cfg.specialists[modality]
    raw = _stage_raw(cfg, f"specialists/{modality}", spec.model, spec.train)
    raw["model"]["modalities"] = [modality]
    raw["data"]["require_modalities"] = [modality]  # a specialist neither trains nor is scored on others
    return validate(raw, f"specialists.{modality}")


def fusion_run_config(cfg: SpecialistsConfig, embeddings: Path) -> RunConfig:
    """The fusion stage reads the exported embeddings with the ``feature_folder`` adapter."""
    raw = _stage_raw(cfg, "fusion", cfg.fusion.model, cfg.fusion.train)
    raw["model"]["modalities"] = None
    raw["data"] = {
        "adapter": "feature_folder",
        "root": str(embeddings),
        "train_split": cfg.data.train_split,
        "val_split": cfg.data.val_split,
        "test_split": cfg.data.test_split,
        "options": {
            "manifest": MANIFEST,
            "features": {m: f"{m}_{{split}}.npz" for m in cfg.modalities},
            "targets": {t.name: t.name for t in cfg.tasks},
            "source_column": "source",
        },
    }
    return validate(raw, "fusion")


def check_data_modalities(cfg: SpecialistsConfig) -> None:
    """Every specialist's modality must exist in the data (synthetic: declared; else the train split)."""
    base = validate(_stage_raw(cfg, "data", ModelConfig(), TrainConfig()), "data")
    found = config_modalities(base)
    for m in cfg.specialists:
        if m not in found:
            raise AffectFusionError(
                f"specialists.{m}: modality {m!r} is not in the data ({cfg.data.adapter} has: {', '.join(found)})"
            )


# -- stage 1: specialists ----------------------------------------------------------------------


def specialist_dataset(run: LoadedRun, split: str) -> MultimodalDataset:
    """A specialist's split: only the samples that have its modality (``data.require_modalities``)."""
    return load_dataset(run.config, split, modalities=run.modalities)


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg.get("train", {}).pop("progress", None)
    return cfg


def _same_config(run_dir: Path, cfg: RunConfig) -> bool:
    """Whether the run in ``run_dir`` was trained with ``cfg`` (up to the progress bar switch)."""
    path = RunPaths(run_dir).config
    try:
        saved = validate(yaml.safe_load(path.read_text()), str(path)).to_dict()
    except (AffectFusionError, OSError, yaml.YAMLError):
        return False
    return _comparable(saved) == _comparable(cfg.to_dict())


def run_finished(run_dir: Path, cfg: RunConfig) -> bool:
    """True if ``run_dir`` holds a finished, evaluated run of exactly ``cfg``."""
    paths = RunPaths(run_dir)
    last = paths.last.with_suffix(".json")
    if not (paths.config.is_file() and last.is_file() and read_json(last).get("finished")):
        return False
    if not _same_config(run_dir, cfg):
        return False  # Trainer.fit reports the mismatch
    splits = [cfg.data.val_split] + ([cfg.data.test_split] if cfg.data.test_split else [])
    return all(paths.metrics(s).is_file() for s in splits)


def train_specialist(
    cfg: SpecialistsConfig, modality: str, out: Path, overwrite: bool, console: Console
) -> dict[str, Any] | None:
    """Train one specialist unless a finished run of the same config is there; its val metrics."""
    run_cfg = specialist_run_config(cfg, modality)
    run_dir = out / "specialists" / modality
    if not overwrite and run_finished(run_dir, run_cfg):
        console.print(f"specialist {modality}: {run_dir} is already trained, skipping", highlight=False)
        return read_json(RunPaths(run_dir).metrics(cfg.data.val_split))
    return Trainer(run_cfg, run_dir, console).fit(overwrite=overwrite).get(cfg.data.val_split)


# -- stage 2: export -------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _splits(cfg: SpecialistsConfig) -> list[str]:
    d = cfg.data
    return list(dict.fromkeys([d.train_split, d.val_split] + ([d.test_split] if d.test_split else [])))


def _specialist_sources(cfg: SpecialistsConfig, out: Path) -> dict[str, dict[str, Any]]:
    """Per fused modality: the specialist checkpoint its embeddings come from, and what they are."""
    sources = {}
    for m in cfg.modalities:
        run = read_run(out / "specialists" / m)
        best = run.paths.best
        info = read_json(best.with_suffix(".json"))
        sources[m] = {
            "run_dir": f"specialists/{m}",
            "checkpoint": f"specialists/{m}/checkpoints/{best.name}.safetensors",
            "sha256": sha256_of(best.with_suffix(".safetensors")),
            "epoch": info.get("epoch"),
            "monitor": info.get("monitor"),
            "value": info.get("value"),
            "encoder": run.config.model.encoder_for(m).name,
            "input_dim": run.modalities[m].dim,
            "dim": run.config.model.hidden_dim,
            "embedding": "pooled encoder output (the vector the specialist's fusion and head read)",
        }
    return sources


def _fingerprint(cfg: SpecialistsConfig, sources: dict[str, dict[str, Any]]) -> str:
    key = {
        "format": EXPORT_FORMAT,
        "data": cfg.data.model_dump(mode="json"),
        "tasks": [t.model_dump(mode="json") for t in cfg.tasks],
        "specialists": {m: (s["sha256"], s["dim"]) for m, s in sources.items()},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` keyed by sample id, written atomically. (``np.savez(**arrays)`` would break on an
    id such as ``file``, which collides with its own parameter names.)"""
    with atomic_file(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for key, value in arrays.items():
            with z.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)


def _target_cell(task: TaskConfig, value: Any) -> Any:
    """An encoded target as the manifest writes it: class name, ';'-joined names, number, or empty."""
    if value is None:
        return ""
    classes = task.classes or []
    if task.type == "classification":
        return classes[int(value)]
    if task.type == "multilabel":
        return ";".join(c for c, v in zip(classes, np.asarray(value), strict=True) if v)
    return float(value)


def export_embeddings(cfg: SpecialistsConfig, out: Path, console: Console) -> tuple[dict[str, Any], bool]:
    """Write every split's specialist embeddings to ``<out>/embeddings`` unless an export from the
    same checkpoints is already there. Returns (provenance, whether anything was written)."""
    folder = out / "embeddings"
    sources = _specialist_sources(cfg, out)
    fingerprint = _fingerprint(cfg, sources)
    prov_path = folder / PROVENANCE
    splits = _splits(cfg)
    files = [folder / MANIFEST] + [folder / f"{m}_{s}.npz" for m in cfg.modalities for s in splits]
    if prov_path.is_file() and all(f.is_file() for f in files):
        previous = read_json(prov_path)
        if previous.get("fingerprint") == fingerprint:
            console.print(f"embeddings in {folder} are from the current specialists, reusing them", highlight=False)
            return previous, False
    prov_path.unlink(missing_ok=True)  # written last: an interrupted export is never taken as complete
    runs = {m: read_run(out / "specialists" / m) for m in cfg.modalities}
    models = {m: load_model(run) for m, run in runs.items()}
    base = validate(
        {**_stage_raw(cfg, "export", ModelConfig(), TrainConfig()), "model": {"modalities": cfg.modalities}},
        "export",
    )
    rows, counts = [], {}
    for split in splits:
        ds = load_dataset(base, split)
        kept = [s for s in ds.samples if s.features]
        if len(kept) < len(ds):
            console.print(
                f"{split}: {len(ds) - len(kept)} samples have none of {', '.join(cfg.modalities)}; left out",
                highlight=False,
            )
        counts[split] = {"n": len(kept)}
        for m in cfg.modalities:
            sub = MultimodalDataset(
                [s for s in kept if m in s.features], modalities=runs[m].modalities, name=f"{split} (with {m})"
            )
            if not len(sub):
                raise AffectFusionError(f"data split {split!r}: no sample has modality {m!r}; cannot export it")
            emb = predict(models[m], sub, runs[m].scalers, keep_embeddings=True).embeddings[m]
            write_npz(folder / f"{m}_{split}.npz", {s.id: e for s, e in zip(sub.samples, emb, strict=True)})
            counts[split][m] = len(sub)
        for s in kept:
            row = {"id": s.id, "split": split, "group": s.group or "", "source": s.source or ""}
            row.update({t.name: _target_cell(t, s.targets.get(t.name)) for t in cfg.tasks})
            rows.append(row)
        console.print(
            f"exported {split}: {counts[split]['n']} samples ("
            + ", ".join(f"{m} {counts[split][m]} x {sources[m]['dim']}" for m in cfg.modalities)
            + ")",
            highlight=False,
        )
    write_csv(pd.DataFrame(rows), folder / MANIFEST)
    provenance = {
        "fingerprint": fingerprint,
        "format": "feature_folder: manifest.csv (id, split, group, source, one column per task) + "
        "<modality>_<split>.npz (sample id -> [dim] float32; a missing id = modality missing)",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "affectfusion_version": affectfusion.__version__,
        "data": cfg.data.model_dump(mode="json"),
        "splits": counts,
        "specialists": sources,
    }
    write_json(prov_path, provenance)
    return provenance, True


# -- stage 3: fusion -------------------------------------------------------------------------


def train_fusion(
    cfg: SpecialistsConfig, out: Path, provenance: dict[str, Any], overwrite: bool, console: Console
) -> Path:
    """Train the fusion on the exported embeddings; a fusion trained on another export starts afresh."""
    from affectfusion.training.distributed import init_distributed

    dist = init_distributed()
    run_dir = out / "fusion"
    run_cfg = fusion_run_config(cfg, (out / "embeddings").resolve())
    marker = run_dir / FUSION_EMBEDDINGS
    if RunPaths(run_dir).config.is_file() and not overwrite:
        if not _same_config(run_dir, run_cfg):
            raise AffectFusionError(
                f"{run_dir} holds a fusion of a different config; delete that folder to train only the fusion "
                "again (the specialists and their embeddings are reused), or pass --overwrite to retrain everything"
            )
        trained_on = read_json(marker).get("fingerprint") if marker.is_file() else None
        if trained_on != provenance["fingerprint"]:
            if dist.is_main:
                console.print("the specialist embeddings changed since the fusion was trained; training it afresh")
            overwrite = True
    dist.barrier()  # every rank has read the marker before rank 0 replaces it
    if dist.is_main:
        marker_info = {
            "fingerprint": provenance["fingerprint"],
            "embeddings": str((out / "embeddings").resolve()),
            "specialists": provenance["specialists"],
        }
        write_json(marker, marker_info)
    if not overwrite and run_finished(run_dir, run_cfg):
        console.print(f"fusion: {run_dir} is already trained, skipping", highlight=False)
    else:
        Trainer(run_cfg, run_dir, console).fit(overwrite=overwrite)
    return run_dir


# -- stage 4: scores per presence pattern ------------------------------------------------------


def pattern_name(modalities: list[str]) -> str:
    """``text-only`` for one modality, else ``text+image`` (in the config's modality order)."""
    return f"{modalities[0]}-only" if len(modalities) == 1 else "+".join(modalities)


def take(preds: Predictions, idx: np.ndarray | list[int]) -> Predictions:
    """The rows ``idx`` of ``preds``, in that order."""
    idx = np.asarray(idx, dtype=np.int64)
    return Predictions(
        ids=[preds.ids[i] for i in idx],
        groups=[preds.groups[i] for i in idx],
        sources=[preds.sources[i] for i in idx],
        y_true={k: v[idx] for k, v in preds.y_true.items()},
        pred={k: v[idx] for k, v in preds.pred.items()},
        proba={k: v[idx] for k, v in preds.proba.items()},
        thresholds=dict(preds.thresholds),
    )


def score_subsets(cfg: SpecialistsConfig, out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """split -> subset -> model (``fusion`` or a specialist's modality) -> metrics.

    Subsets are ``all`` plus every presence pattern found in the split. A specialist is scored on a
    subset only if every sample of it has the specialist's modality.
    """
    fusion = read_run(out / "fusion")
    fusion_model = load_model(fusion)
    specialists = {m: read_run(out / "specialists" / m) for m in cfg.modalities}
    spec_models = {m: load_model(run) for m, run in specialists.items()}
    splits = [cfg.data.val_split] + ([cfg.data.test_split] if cfg.data.test_split else [])
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for split in splits:
        ds = load_dataset(fusion.config, split, modalities=fusion.modalities)
        fused = predict(fusion_model, ds, fusion.scalers)
        has = {m: np.array([m in s.features for s in ds.samples]) for m in cfg.modalities}
        own: dict[str, Predictions] = {}
        for m, run in specialists.items():
            raw = specialist_dataset(run, split)
            own[m] = predict(spec_models[m], raw, run.scalers)
        patterns = {tuple(m for m in cfg.modalities if has[m][i]) for i in range(len(ds))}
        ordered = sorted(patterns, key=lambda p: (len(p), [cfg.modalities.index(m) for m in p]))
        subsets: dict[str, tuple[tuple[str, ...], np.ndarray]] = {"all": ((), np.ones(len(ds), dtype=bool))}
        for p in ordered:
            mask = np.all([has[m] if m in p else ~has[m] for m in cfg.modalities], axis=0)
            subsets[pattern_name(list(p))] = (p, mask)
        results[split] = {}
        for name, (_, mask) in subsets.items():
            part = take(fused, np.flatnonzero(mask))
            entry = {"fusion": score(part, cfg.tasks, split)}
            for m in cfg.modalities:
                if has[m][mask].all():
                    row_of = {sid: i for i, sid in enumerate(own[m].ids)}
                    entry[m] = score(take(own[m], [row_of[sid] for sid in part.ids]), cfg.tasks, split)
            results[split][name] = entry
    return results


def _primary(cfg: SpecialistsConfig) -> tuple[str, str]:
    """(main metric, second metric) of the primary task, as the ablation reports them."""
    task = cfg.tasks[0]
    main = default_monitor(task)
    return main, "accuracy" if task.type != "regression" else "ccc"


def subsets_frames(cfg: SpecialistsConfig, results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table: one row per split, subset and model with every scalar metric; wide table:
    one row per split and subset, the main metric per model and the fusion's gain)."""
    main, second = _primary(cfg)
    better = metric_mode(main)
    long_rows, wide_rows = [], []
    for split, subsets in results.items():
        for subset, models in subsets.items():
            for model, metrics in models.items():
                scalars = {k: v for k, v in metrics.items() if k not in ("split", "n", "primary_task") and _scalar(v)}
                long_rows.append({"split": split, "subset": subset, "model": model, "n": metrics["n"], **scalars})
            fused = models["fusion"].get(main)
            row = {
                "split": split,
                "subset": subset,
                "n": models["fusion"]["n"],
                f"fusion {main}": fused,
                f"fusion {second}": models["fusion"].get(second),
            }
            spec_values = []
            for m in cfg.modalities:
                value = models[m].get(main) if m in models else None
                row[f"{m} {main}"] = value
                if value is not None:
                    spec_values.append(value)
            gain = None
            if spec_values and fused is not None:
                gain = fused - max(spec_values) if better == "max" else min(spec_values) - fused
            row["gain vs best specialist"] = gain
            wide_rows.append(row)
    return pd.DataFrame(long_rows), pd.DataFrame(wide_rows)


def _scalar(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def write_subsets(cfg: SpecialistsConfig, out: Path, results: dict) -> pd.DataFrame:
    folder = out / "subsets"
    long, wide = subsets_frames(cfg, results)
    write_json(folder / "subsets.json", results)
    write_csv(long, folder / "subsets.csv")
    numeric = [pd.api.types.is_numeric_dtype(wide[c]) for c in wide.columns]
    table = markdown_table(list(wide.columns), wide.values.tolist(), numeric)
    main, _ = _primary(cfg)
    text = (
        f"# {cfg.name}: scores per modality subset\n\n"
        f"Primary task `{cfg.tasks[0].name}`. Each specialist is scored on the subsets whose samples all have "
        f"its modality; the gain is the fusion's {main} minus the best such specialist's (positive = fusion "
        "helps).\n\n" + table + "\n"
    )
    write_text(folder / "subsets.md", text)
    return wide


def print_subsets(wide: pd.DataFrame, title: str, console: Console) -> None:
    table = Table(title=title)
    for col in wide.columns:
        numeric = pd.api.types.is_numeric_dtype(wide[col])
        table.add_column(col, justify="right" if numeric else "left")
    for row in wide.itertuples(index=False):
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) and np.isfinite(v) else fmt_value(v) for v in row))
    console.print(table)


# -- the recipe --------------------------------------------------------------------------------


def train_specialists(
    config: str, overrides: dict[str, Any], out: Path | None, overwrite: bool, console: Console | None = None
) -> Path:
    """``affectfusion train`` for a ``kind: specialists`` config: specialists, export, fusion, subsets.

    Returns the output folder (default ``runs/<name>``).
    """
    from affectfusion.training.distributed import init_distributed

    log = console or Console(stderr=True)
    cfg = load_specialists_config(config, overrides)
    check_data_modalities(cfg)
    out = Path(out) if out is not None else Path("runs") / cfg.name
    dist = init_distributed()
    if dist.is_main:
        write_text(RunPaths(out).config, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    for m in cfg.specialists:
        log.print(f"[bold]specialist {m}[/]", highlight=False)
        train_specialist(cfg, m, out, overwrite, log)
    provenance: dict[str, Any] = {}
    if dist.is_main:
        provenance, _ = export_embeddings(cfg, out, log)
    dist.barrier()
    if not dist.is_main:
        provenance = read_json(out / "embeddings" / PROVENANCE)
    log.print("[bold]fusion[/] of the frozen specialist embeddings", highlight=False)
    train_fusion(cfg, out, provenance, overwrite, log)
    if dist.is_main:
        wide = write_subsets(cfg, out, score_subsets(cfg, out))
        print_subsets(wide, f"{cfg.name}: per modality subset ({out / 'subsets'})", Console(width=160))
    return out
