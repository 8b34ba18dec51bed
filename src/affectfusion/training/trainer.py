"""One training loop for every model and task mix.

AdamW, plateau or cosine-with-warmup schedule, gradient clipping, modality dropout, early stopping
on a configured validation metric, best/last checkpoints, resume after interruption, per-epoch
JSONL metrics, DDP under torchrun. Shuffling and dropout are seeded per epoch from
``train.seed``, so a resumed run continues exactly as the uninterrupted one would.

Multilabel tasks are selected and early-stopped at their configured threshold; after training,
the best checkpoint's decision thresholds are tuned on the validation split, saved to
``thresholds.json`` and used by every later prediction (the test split is never tuned on).
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

import affectfusion
from affectfusion.config import RunConfig, validate
from affectfusion.data.tasks import (
    TargetScaler,
    balanced_class_weights,
    balanced_pos_weight,
    class_counts,
    collator_for,
)
from affectfusion.data.types import Batch, MultimodalDataset
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.metrics import metric_value, resolve_monitor, task_metrics, tune_thresholds
from affectfusion.evaluation.report import fmt_value, plot_run, write_run_report
from affectfusion.io import append_jsonl, read_json, read_jsonl, write_csv, write_json, write_text
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import LoadedRun, RunPaths, read_run
from affectfusion.training.checkpoint import load_checkpoint, save_checkpoint
from affectfusion.training.distributed import DistContext, init_distributed
from affectfusion.training.losses import MultiTaskLoss
from affectfusion.training.predict import Predictions, predict, predictions_frame, score

THRESHOLDS_FILE = "thresholds.json"  # in the run folder: tuned multilabel decision thresholds


def drop_modalities(batch: Batch, p: float, generator: torch.Generator) -> Batch:
    """Mark each present modality missing with probability p, always keeping one per sample."""
    names = list(batch.present)
    present = torch.stack([batch.present[m] for m in names], 1)  # [B, M]
    keep = torch.rand(present.shape, generator=generator) >= p
    new = present & keep
    empty = ~new.any(1) & present.any(1)
    if empty.any():
        # Restore one randomly chosen originally-present modality for samples that lost all.
        scores = torch.rand(present.shape, generator=generator) * present
        choice = scores.argmax(1)
        new[empty, choice[empty]] = True
    return batch.with_present({m: new[:, i] for i, m in enumerate(names)})


def build_model_for(cfg: RunConfig, modalities: dict) -> MultimodalModel:
    return MultimodalModel(modalities, cfg.tasks, cfg.model)


def load_model(run: LoadedRun, which: str = "best") -> MultimodalModel:
    """The trained model, with the run's tuned multilabel thresholds if it has them."""
    model = build_model_for(run.config, run.modalities)
    load_checkpoint(run.paths.best if which == "best" else run.paths.last, model)
    model.thresholds.update(read_thresholds(run))
    model.eval()
    return model


def read_thresholds(run: LoadedRun) -> dict[str, np.ndarray]:
    """Tuned per-class thresholds of the run's multilabel tasks ({} before tuning)."""
    path = run.paths.root / THRESHOLDS_FILE
    if not path.is_file():
        return {}
    saved, out = read_json(path), {}
    for t in run.config.tasks:
        entry = saved.get(t.name) if t.type == "multilabel" else None
        if entry is None:
            continue
        if entry.get("classes") != t.classes:
            raise AffectFusionError(f"{path}: thresholds of task {t.name!r} are for other classes than the config's")
        out[t.name] = np.asarray(entry["thresholds"], dtype=np.float64)
    return out


def tuned_thresholds(preds: Predictions, run: LoadedRun, split: str) -> dict[str, dict]:
    """Per multilabel task, the thresholds ``threshold_tuning`` picks on ``split``'s predictions,
    with the validation macro F1 at the configured and at the tuned threshold (what tuning bought)."""
    out = {}
    for t in run.config.tasks:
        if t.type != "multilabel":
            continue
        keep = preds.labelled(t.name)
        y, proba = preds.y_true[t.name][keep], preds.proba[t.name][keep]
        chosen = tune_thresholds(y, proba, t.threshold_tuning, t.threshold)
        default, tuned = (task_metrics(t, y, (proba >= th).astype(np.int64)) for th in (t.threshold, chosen))
        out[t.name] = {
            "tuning": t.threshold_tuning,
            "split": split,
            "classes": t.classes,
            "thresholds": chosen.tolist(),
            "macro_f1_default": default["macro_f1"],
            "macro_f1_tuned": tuned["macro_f1"],
        }
    return out


@dataclass
class EpochResult:
    train_loss: float
    parts: dict[str, float]


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, console: Console | None = None) -> None:
        self.cfg = cfg
        self.paths = RunPaths(Path(run_dir))
        self.dist: DistContext = init_distributed()
        self.console = console or Console(stderr=True)
        self.monitor, self.mode = resolve_monitor(cfg)

    # -- setup -------------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.dist.is_main:
            self.console.print(msg, highlight=False)

    def _check_run_dir(self, overwrite: bool) -> bool:
        """True if an unfinished run of the same config is there to resume."""
        p = self.paths
        if not p.config.exists():
            return False
        if overwrite:
            return False
        try:  # re-validated, so config keys added since the run was trained compare as their defaults
            saved = validate(yaml.safe_load(p.config.read_text()), str(p.config)).to_dict()
        except AffectFusionError:
            saved = {}
        current = self.cfg.to_dict()
        for d in (saved, current):
            d.get("train", {}).pop("progress", None)
        if saved != current:
            raise AffectFusionError(
                f"{p.root} holds a run of a different config; pass --overwrite to replace it "
                "or --out to train elsewhere"
            )
        return p.last.with_suffix(".json").exists()

    def _prepare_data(self) -> tuple[MultimodalDataset, MultimodalDataset]:
        cfg = self.cfg
        train = load_dataset(cfg, cfg.data.train_split)
        val = load_dataset(cfg, cfg.data.val_split, modalities=train.modalities)
        return train, val

    def _scalers_and_weights(self, train: MultimodalDataset) -> tuple[dict, dict]:
        scalers, weights = {}, {}
        for t in self.cfg.tasks:
            if t.type == "regression":
                scalers[t.name] = TargetScaler.fit([s.targets.get(t.name) for s in train.samples])
            elif t.type == "multilabel":
                if t.pos_weight == "balanced":
                    n = sum(s.targets.get(t.name) is not None for s in train.samples)
                    weights[t.name] = balanced_pos_weight(class_counts(train.samples, t), n)
                elif isinstance(t.pos_weight, list):
                    weights[t.name] = list(t.pos_weight)
            elif t.class_weights == "balanced":
                weights[t.name] = balanced_class_weights(class_counts(train.samples, t))
            elif isinstance(t.class_weights, list):
                weights[t.name] = list(t.class_weights)
        return scalers, weights

    # -- main loop ---------------------------------------------------------------------------
    def fit(self, overwrite: bool = False) -> dict[str, Any]:
        cfg, paths = self.cfg, self.paths
        resume = self._check_run_dir(overwrite)
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed % 2**32)
        train_ds, val_ds = self._prepare_data()
        scalers, class_weights = self._scalers_and_weights(train_ds)
        model = build_model_for(cfg, train_ds.modalities)
        model.fit_input_norm(train_ds)
        meta = {
            "affectfusion_version": affectfusion.__version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "modalities": {m: s.to_dict() for m, s in train_ds.modalities.items()},
            "tasks": [t.model_dump() for t in cfg.tasks],
            "scalers": {k: v.to_dict() for k, v in scalers.items()},
            "class_weights": class_weights,
            "fusion": cfg.model.fusion.name,
            "n_parameters": model.n_parameters(),
            "n_trainable_parameters": model.n_parameters(trainable_only=True),
            "n_train": len(train_ds.samples),
            "n_val": len(val_ds.samples),
            "monitor": self.monitor,
            "monitor_mode": self.mode,
            "world_size": self.dist.world_size,
        }
        if self.dist.is_main:
            if overwrite and paths.root.exists():
                for sub in ("history.jsonl", THRESHOLDS_FILE):
                    (paths.root / sub).unlink(missing_ok=True)
                for f in paths.checkpoints.glob("*"):
                    f.unlink()
            paths.root.mkdir(parents=True, exist_ok=True)
            write_json(paths.meta, meta)
            write_text(paths.config, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        loss_fn = MultiTaskLoss(
            cfg.tasks,
            {k: torch.tensor(v, dtype=torch.float32) for k, v in class_weights.items()},
            scalers,
            cfg.train.contrastive_weight,
            cfg.train.contrastive_temperature,
        )
        trainable = [p for p in model.parameters() if p.requires_grad]  # frozen pretrained weights stay out
        optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        collate = collator_for(train_ds.modalities, cfg.tasks)
        sampler = (
            DistributedSampler(train_ds, self.dist.world_size, self.dist.rank, shuffle=True, seed=cfg.train.seed)
            if self.dist.enabled
            else None
        )
        steps_per_epoch = math.ceil(len(sampler or train_ds) / cfg.train.batch_size)
        scheduler, per_step = self._make_scheduler(optimizer, steps_per_epoch)

        start_epoch, best_value, bad_epochs, best_epoch = 1, None, 0, 0
        if resume:
            info = load_checkpoint(paths.last, model, optimizer)
            if info.get("finished"):
                self._log(f"[green]{paths.root} is already trained[/]; use --overwrite to train again")
                return self._final_metrics()
            if scheduler is not None and info.get("scheduler"):
                scheduler.load_state_dict(info["scheduler"])
            start_epoch = info["epoch"] + 1
            best_value, best_epoch, bad_epochs = info["best_value"], info["best_epoch"], info["bad_epochs"]
            self._truncate_history(info["epoch"])
            self._log(f"resuming {paths.root} from epoch {info['epoch']}")

        net: torch.nn.Module = (
            DistributedDataParallel(model, find_unused_parameters=True) if self.dist.enabled else model
        )
        n_all, n_trainable = model.n_parameters(), model.n_parameters(trainable_only=True)
        self._log(
            f"[bold]{cfg.name}[/]: fusion {cfg.model.fusion.name}, modalities "
            f"{', '.join(f'{m}[{s.dim}]' for m, s in train_ds.modalities.items())}, "
            f"{len(train_ds.samples)} train / {len(val_ds.samples)} val samples, {n_all:,} parameters"
            + (f" ({n_trainable:,} trainable)" if n_trainable < n_all else "")
        )
        epochs = cfg.train.epochs
        stopped = False
        with self._progress() as progress:
            bar = progress.add_task("epochs", total=epochs, completed=start_epoch - 1)
            for epoch in range(start_epoch, epochs + 1):
                t0 = time.perf_counter()
                g = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch)
                torch.manual_seed(cfg.train.seed * 100_003 + epoch)
                if sampler is not None:
                    sampler.set_epoch(epoch)
                loader = DataLoader(
                    train_ds,
                    batch_size=cfg.train.batch_size,
                    shuffle=sampler is None,
                    sampler=sampler,
                    generator=g if sampler is None else None,
                    collate_fn=collate,
                    num_workers=cfg.train.num_workers,
                )
                result = self._train_epoch(
                    net, model, loader, loss_fn, optimizer, scheduler if per_step else None, g, progress
                )
                val_preds = predict(model, val_ds, scalers, batch_size=max(64, cfg.train.batch_size))
                val_metrics = score(val_preds, cfg.tasks, cfg.data.val_split)
                val_loss = self._loss_on(model, val_ds, loss_fn)
                val_metrics["loss"] = val_loss
                value = metric_value(val_metrics, self.monitor)
                improved = best_value is None or (value > best_value if self.mode == "max" else value < best_value)
                if improved:
                    best_value, best_epoch, bad_epochs = value, epoch, 0
                else:
                    bad_epochs += 1
                if scheduler is not None and not per_step:
                    scheduler.step(value) if cfg.train.scheduler == "plateau" else scheduler.step()
                seconds = time.perf_counter() - t0
                record = {
                    "epoch": epoch,
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": result.train_loss,
                    "train_parts": result.parts,
                    "val_loss": val_loss,
                    "seconds": seconds,
                    "val": val_metrics,
                }
                es = cfg.train.early_stopping
                stopped = es is not None and bad_epochs >= es.patience
                if self.dist.is_main:
                    append_jsonl(paths.history, record)
                    state = {
                        "epoch": epoch,
                        "best_value": best_value,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "monitor": self.monitor,
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "finished": stopped or epoch == epochs,
                    }
                    if improved:
                        save_checkpoint(paths.best, model, {**state, "value": value, "val": val_metrics})
                    save_checkpoint(paths.last, model, state, optimizer)
                self.dist.barrier()
                self._log(
                    f"epoch {epoch:>3}/{epochs}  loss {result.train_loss:.4f}  val_loss {val_loss:.4f}  "
                    f"{self.monitor} {value:.4f}{'  [green]*best[/]' if improved else ''}  ({seconds:.1f}s)"
                )
                progress.update(bar, advance=1)
                if stopped:
                    self._log(f"early stopping: no improvement of {self.monitor} for {bad_epochs} epochs")
                    break
        return self._final_metrics()

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not (self.cfg.train.progress and self.dist.is_main),
            transient=True,
        )

    def _make_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        """Returns (scheduler, steps_per_batch). Cosine steps per batch, plateau per epoch."""
        t = self.cfg.train
        if t.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=self.mode,
                factor=0.5,
                patience=max(1, (t.early_stopping.patience if t.early_stopping else 6) // 3),
            )
            return sched, False
        if t.scheduler == "cosine":
            warm, total = t.warmup_epochs * steps_per_epoch, t.epochs * steps_per_epoch

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                progress = (step - warm) / max(1, total - warm)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

            return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
        return None, False

    def _train_epoch(self, net, model, loader, loss_fn, optimizer, step_scheduler, g, progress) -> EpochResult:
        model.train()
        total, n, parts_sum = 0.0, 0, {}
        bar = progress.add_task("  batches", total=len(loader))
        p_drop = self.cfg.train.modality_dropout
        for batch in loader:
            if p_drop > 0:
                batch = drop_modalities(batch, p_drop, g)
            out = net(batch)
            loss, parts = loss_fn(out, batch)
            # Heads of tasks unlabelled in this batch still join the graph (DDP needs every
            # parameter to receive a gradient, even a zero one).
            loss = loss + sum(o.sum() * 0.0 for o in out.outputs.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.train.grad_clip)
            optimizer.step()
            if step_scheduler is not None:
                step_scheduler.step()
            total += float(loss.detach()) * len(batch)
            n += len(batch)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v * len(batch)
            progress.update(bar, advance=1)
        progress.remove_task(bar)
        return EpochResult(total / max(n, 1), {k: v / max(n, 1) for k, v in parts_sum.items()})

    @torch.no_grad()
    def _loss_on(self, model: MultimodalModel, ds: MultimodalDataset, loss_fn: MultiTaskLoss) -> float:
        model.eval()
        collate = collator_for(model.modalities, self.cfg.tasks)
        total, n = 0.0, 0
        for batch in DataLoader(ds, batch_size=256, collate_fn=collate):
            loss, _ = loss_fn(model(batch), batch)
            total += float(loss) * len(batch)
            n += len(batch)
        return total / max(n, 1)

    def _truncate_history(self, last_epoch: int) -> None:
        if not self.dist.is_main or not self.paths.history.exists():
            return
        rows = [r for r in read_jsonl(self.paths.history) if r["epoch"] <= last_epoch]
        self.paths.history.unlink()
        for r in rows:
            append_jsonl(self.paths.history, r)

    def _final_metrics(self) -> dict[str, Any]:
        """Tune multilabel thresholds on the validation split, then evaluate the best checkpoint on
        the validation (and test) split with them; write plots and report."""
        if not self.dist.is_main:
            return {}
        run = read_run(self.paths.root)
        if any(t.type == "multilabel" for t in self.cfg.tasks):
            val = self.cfg.data.val_split
            preds = predict(load_model(run), load_dataset(run.config, val, modalities=run.modalities), run.scalers)
            tuned = tuned_thresholds(preds, run, val)
            write_json(self.paths.root / THRESHOLDS_FILE, tuned)
            for task, info in tuned.items():
                low, high = min(info["thresholds"]), max(info["thresholds"])
                shown = f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f} (per class)"
                self._log(
                    f"{task}: decision threshold {shown} tuned on {val}, macro_f1 "
                    f"{fmt_value(info['macro_f1_default'])} -> {fmt_value(info['macro_f1_tuned'])}"
                )
        splits = [self.cfg.data.val_split] + ([self.cfg.data.test_split] if self.cfg.data.test_split else [])
        results = {}
        for split in splits:
            results[split] = evaluate_run(run, split)
        plot_run(self.paths.root)
        write_run_report(self.paths.root)
        return results


def evaluate_run(
    run: LoadedRun, split: str, root: str | Path | None = None, model: MultimodalModel | None = None
) -> dict:
    """Score the best checkpoint of a run on one split; writes eval/<split>/metrics.json and predictions."""
    model = model or load_model(run)
    ds = load_dataset(run.config, split, root=root, modalities=run.modalities)
    preds = predict(model, ds, run.scalers)
    metrics = score(preds, run.config.tasks, split)
    data_root = root if root is not None else run.config.data.root
    metrics["provenance"] = {"data_root": None if data_root is None else str(data_root), "checkpoint": "best"}
    out = run.paths.eval_dir(split)
    write_json(out / "metrics.json", metrics)
    write_csv(predictions_frame(preds, run.config.tasks, list(run.modalities)), out / "predictions.csv")
    return metrics
