"""One training loop for every model and task mix, on any device and precision.

AdamW, plateau or cosine-with-warmup schedule, gradient clipping, modality dropout, early stopping
on a configured validation metric, best/last checkpoints, resume after interruption, per-epoch
JSONL metrics, DDP under torchrun (NCCL on CUDA, gloo on CPU). ``train.device`` picks CPU, CUDA or
MPS, ``train.precision`` autocast mixed precision (fp16 with a gradient scaler), ``train.threads`` the
CPU thread count (:mod:`affectfusion.threads`). Checkpoints are float32 and device-free. Shuffling and
dropout are seeded per epoch from ``train.seed``, so a resumed run continues exactly as the
uninterrupted one would.

Multilabel tasks are selected and early-stopped at their configured threshold; after training,
the best checkpoint's decision thresholds are tuned on the validation split, saved to
``thresholds.json`` and used by every later prediction (the test split is never tuned on).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import affectfusion
from affectfusion.config import RunConfig
from affectfusion.data.buckets import LengthBuckets, sample_costs
from affectfusion.data.checks import guard_leakage
from affectfusion.data.conversation import ConversationDataset
from affectfusion.data.tasks import collator_for
from affectfusion.data.types import MultimodalDataset
from affectfusion.device import autocast, check_precision, describe, resolve_device
from affectfusion.errors import AffectFusionError
from affectfusion.evaluation.conformal import small_split_warning
from affectfusion.evaluation.figures import Figures, start_helper
from affectfusion.evaluation.metrics import metric_value
from affectfusion.evaluation.report import curves_drawing, fmt_value, run_drawings, write_run_report
from affectfusion.evaluation.selection import resolve_monitor
from affectfusion.io import append_jsonl, read_jsonl, write_json, write_text
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.rundir import RunPaths, read_run, read_run_folder
from affectfusion.threads import apply_threads
from affectfusion.training.checkpoint import load_checkpoint, load_tensors, save_checkpoint, save_tensors
from affectfusion.training.distributed import DistContext, init_distributed
from affectfusion.training.evaluation import evaluate_run, tuned_thresholds
from affectfusion.training.loading import build_model_for, load_model
from affectfusion.training.predict import predict, score
from affectfusion.training.resume import clear_training_outputs, config_differs, remove_stale_temp_files, trim_history
from affectfusion.training.steps import (
    Optimisation,
    StepContext,
    build_optimisation,
    mean_loss,
    scalers_and_weights,
    train_epoch,
)

# Run on rank 0 after each saved epoch with (epoch, history record, monitored value); tuning prunes by raising.
EpochCallback = Callable[[int, dict[str, Any], float], None]


@dataclass
class LoopState:
    """Where early stopping stands; saved in every checkpoint so a resumed run continues it."""

    start_epoch: int = 1
    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        console: Console | None = None,
        figures: Figures | None = None,
        callbacks: Sequence[EpochCallback] = (),
    ) -> None:
        """Given ``figures``, the caller adds its own, waits for them and writes the report; else the trainer does."""
        self.cfg = cfg
        self.paths = RunPaths(Path(run_dir))
        self.dist: DistContext = init_distributed(cfg.train.device)
        self.device = resolve_device(cfg.train.device, local_rank=self.dist.local_rank if self.dist.enabled else None)
        check_precision(self.device, cfg.train.precision)
        self.console = console or Console(stderr=True)
        self.monitor, self.mode = resolve_monitor(cfg)
        self.figures, self.owns_figures = figures or Figures(), figures is None  # drawn by a helper process
        self.callbacks = list(callbacks)

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
        if config_differs(p, self.cfg):
            raise AffectFusionError(
                f"{p.root} holds a run of a different config; pass --overwrite to replace it "
                "or --out to train elsewhere"
            )
        return p.last.with_suffix(".json").exists()

    def _prepare_data(self) -> tuple[MultimodalDataset, MultimodalDataset]:
        train = load_dataset(self.cfg, self.cfg.data.train_split)
        return train, load_dataset(self.cfg, self.cfg.data.val_split, modalities=train.modalities)

    def _build_model(self, train_ds: MultimodalDataset) -> MultimodalModel:
        """The model with its input normalisation fitted, on the run's device; sets the CPU thread count."""
        model = build_model_for(self.cfg, train_ds.modalities)
        model.fit_input_norm(train_ds)
        self.threads = apply_threads(self.cfg.train.threads, model.n_parameters())
        return model.to(self.device)

    def _start_run(self, model: MultimodalModel, train_ds, val_ds, scalers: dict, weights: dict, resume: bool):
        """Rank 0 writes the run's metadata and resolved config (an earlier start's outputs go first unless resumed)."""
        if not self.dist.is_main:
            return
        cfg, paths = self.cfg, self.paths
        meta = {
            "affectfusion_version": affectfusion.__version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "modalities": {m: s.to_dict() for m, s in train_ds.modalities.items()},
            "tasks": [t.model_dump() for t in cfg.tasks],
            "scalers": {k: v.to_dict() for k, v in scalers.items()},
            "class_weights": weights,
            "fusion": cfg.model.fusion.name,
            "n_parameters": model.n_parameters(),
            "n_trainable_parameters": model.n_parameters(trainable_only=True),
            "n_train": len(train_ds.samples),
            "n_val": len(val_ds.samples),
            "monitor": self.monitor,
            "monitor_mode": self.mode,
            "world_size": self.dist.world_size,
            "device": describe(self.device),
            "precision": cfg.train.precision,
            "threads": self.threads.threads,
        }
        if paths.root.exists():
            remove_stale_temp_files(paths.root)  # left by a writer killed mid-file
            if not resume:
                clear_training_outputs(paths)
        paths.root.mkdir(parents=True, exist_ok=True)
        write_json(paths.meta, meta)
        write_json(paths.data_check, self.data_check)
        write_text(paths.config, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def _resume(self, model: MultimodalModel, opt: Optimisation) -> LoopState | None:
        """The loop state of the interrupted run (weights, optimizer, schedule and scaler restored),
        or None when that run had already finished."""
        info = load_checkpoint(self.paths.last, model, opt.optimizer)
        if info.get("finished"):
            self._log(f"[green]{self.paths.root} is already trained[/]; use --overwrite to train again")
            return None
        if opt.scheduler is not None and info.get("scheduler"):
            opt.scheduler.load_state_dict(info["scheduler"])
        if opt.scaler is not None and info.get("grad_scaler"):
            opt.scaler.load_state_dict(info["grad_scaler"])
        if opt.ema is not None:
            opt.ema.load_state_dict(load_tensors(self.paths.last_average))
        if self.dist.is_main:
            trim_history(self.paths, info["epoch"])
        self._log(f"resuming {self.paths.root} from epoch {info['epoch']}")
        return LoopState(info["epoch"] + 1, info["best_value"], info["best_epoch"], info["bad_epochs"])

    def _wrap(self, model: MultimodalModel) -> torch.nn.Module:
        if not self.dist.enabled:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    # -- main loop ---------------------------------------------------------------------------
    def fit(self, overwrite: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        resume = self._check_run_dir(overwrite)
        if self.dist.is_main:
            start_helper()  # matplotlib loads in the helper while the data loads and the model trains
        self.data_check = guard_leakage(cfg)  # refuses leaking splits before any work
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed % 2**32)
        train_ds, val_ds = self._prepare_data()
        scalers, weights = scalers_and_weights(cfg.tasks, train_ds)
        model = self._build_model(train_ds)
        self._start_run(model, train_ds, val_ds, scalers, weights, resume)
        opt = build_optimisation(cfg, model, train_ds, scalers, weights, self.dist, self.device, self.mode)
        state = self._resume(model, opt) if resume else LoopState()
        if state is None:
            return self._final_metrics()
        ctx = opt.context(self._wrap(model), model, self.device, cfg.train)
        self._log_start(model, train_ds, val_ds)
        with self._progress() as progress:
            bar = progress.add_task("epochs", total=cfg.train.epochs, completed=state.start_epoch - 1)
            for epoch in range(state.start_epoch, cfg.train.epochs + 1):
                stopped = self._epoch(epoch, ctx, opt, state, train_ds, val_ds, scalers, progress)
                progress.update(bar, advance=1)
                if stopped:
                    self._log(f"early stopping: no improvement of {self.monitor} for {state.bad_epochs} epochs")
                    break
        return self._final_metrics()

    def _log_start(self, model: MultimodalModel, train_ds: MultimodalDataset, val_ds: MultimodalDataset) -> None:
        n_all, n_trainable = model.n_parameters(), model.n_parameters(trainable_only=True)
        self._log(
            f"[bold]{self.cfg.name}[/]: fusion {self.cfg.model.fusion.name}, modalities "
            f"{', '.join(f'{m}[{s.dim}]' for m, s in train_ds.modalities.items())}, "
            f"{len(train_ds.samples)} train / {len(val_ds.samples)} val samples, {n_all:,} parameters"
            + (f" ({n_trainable:,} trainable)" if n_trainable < n_all else "")
            + f"; {describe(self.device)}, {self.cfg.train.precision}, {self.threads}"
            + (f"\n[yellow]warning:[/] {escape(w)}" if (w := small_split_warning(self.cfg, val_ds.samples)) else "")
        )

    def _loader(self, ds: MultimodalDataset, collate, **kwargs) -> DataLoader:
        """Batches from pinned memory when they go to a GPU, so ``non_blocking`` copies overlap compute."""
        return DataLoader(ds, collate_fn=collate, pin_memory=self.device.type == "cuda", **kwargs)

    def _epoch(
        self,
        epoch: int,
        ctx: StepContext,
        opt: Optimisation,
        state: LoopState,
        train_ds,
        val_ds,
        scalers: dict,
        progress: Progress,
    ) -> bool:
        """Train one epoch, validate, checkpoint, log; returns whether early stopping ends the run."""
        cfg = self.cfg
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch)
        torch.manual_seed(cfg.train.seed * 100_003 + epoch)
        if opt.sampler is not None:
            opt.sampler.set_epoch(epoch)
        collate = collator_for(train_ds.modalities, cfg.tasks)
        order: dict[str, Any] = {"batch_size": cfg.train.batch_size, "shuffle": opt.sampler is None}
        if opt.sampler is not None:
            order.update(sampler=opt.sampler)
        elif cfg.train.bucket_by_length and not isinstance(train_ds, ConversationDataset):
            order = {"batch_sampler": LengthBuckets(sample_costs(train_ds), cfg.train.batch_size, g)}
        else:
            order.update(generator=g)
        loader = self._loader(train_ds, collate, num_workers=cfg.train.num_workers, **order)
        bar = progress.add_task("  batches", total=len(loader))
        result = train_epoch(
            ctx, loader, g, opt.scheduler if opt.per_step else None, lambda: progress.update(bar, advance=1)
        )
        progress.remove_task(bar)
        model = opt.evaluated(ctx.model)
        with autocast(self.device, cfg.train.precision if cfg.train.validate_precision == "train" else "fp32"):
            preds = predict(model, val_ds, scalers, batch_size=max(64, cfg.train.batch_size))
            val_loss = mean_loss(model, self._loader(val_ds, collate, batch_size=256), opt.loss_fn, self.device)
        val_metrics = score(preds, cfg.tasks, cfg.data.val_split)
        val_metrics["loss"] = val_loss
        value = metric_value(val_metrics, self.monitor)
        improved = state.best_value is None or (
            value > state.best_value if self.mode == "max" else value < state.best_value
        )
        if improved:
            state.best_value, state.best_epoch, state.bad_epochs = value, epoch, 0
        else:
            state.bad_epochs += 1
        if opt.scheduler is not None and not opt.per_step:
            opt.scheduler.step(value) if cfg.train.scheduler == "plateau" else opt.scheduler.step()
        seconds = time.perf_counter() - t0
        es = cfg.train.early_stopping
        stopped = es is not None and state.bad_epochs >= es.patience
        record = {
            "epoch": epoch,
            "lr": opt.optimizer.param_groups[0]["lr"],
            "train_loss": result.train_loss,
            "train_parts": result.parts,
            "val_loss": val_loss,
            "seconds": seconds,
            "val": val_metrics,
        }
        self._save_epoch(epoch, ctx.model, opt, state, record, improved, stopped or epoch == cfg.train.epochs, value)
        self._log(
            f"epoch {epoch:>3}/{cfg.train.epochs}  loss {result.train_loss:.4f}  val_loss {val_loss:.4f}  "
            f"{self.monitor} {value:.4f}{'  [green]*best[/]' if improved else ''}  ({seconds:.1f}s)"
        )
        return stopped

    def _save_epoch(
        self,
        epoch: int,
        model: MultimodalModel,
        opt: Optimisation,
        state: LoopState,
        record: dict,
        improved: bool,
        finished: bool,
        value: float,
    ) -> None:
        """Rank 0 appends the history line and writes the best/last checkpoints; every rank waits for it."""
        if self.dist.is_main:
            append_jsonl(self.paths.history, record)
            # the curves are live while a long run trains, and final while its best checkpoint is evaluated
            curves = curves_drawing(self.paths.root, read_jsonl(self.paths.history), self.monitor)
            self.figures.draw(curves) if finished else self.figures.refresh(curves)
            info = {
                "epoch": epoch,
                "best_value": state.best_value,
                "best_epoch": state.best_epoch,
                "bad_epochs": state.bad_epochs,
                "monitor": self.monitor,
                "scheduler": opt.scheduler.state_dict() if opt.scheduler is not None else None,
                "grad_scaler": opt.scaler.state_dict() if opt.scaler is not None else None,
                "finished": finished,
            }
            if improved:
                best = opt.evaluated(model)
                save_checkpoint(self.paths.best, best, {**info, "value": value, "val": record["val"]})
            save_checkpoint(self.paths.last, model, info, opt.optimizer)
            if opt.ema is not None:  # resuming continues the same average
                save_tensors(self.paths.last_average, opt.ema.state_dict())
            for callback in self.callbacks:
                callback(epoch, record, value)
        self.dist.barrier()

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

    def _final_metrics(self) -> dict[str, Any]:
        """Tune multilabel thresholds on the validation split, then evaluate the best checkpoint on
        the validation (and test) split with them, on the run's device; write plots and report."""
        if not self.dist.is_main:
            return {}
        run = read_run(self.paths.root)
        if any(t.type == "multilabel" for t in self.cfg.tasks):
            val = self.cfg.data.val_split
            preds = predict(
                load_model(run, device=self.device),
                load_dataset(run.config, val, modalities=run.modalities),
                run.scalers,
            )
            tuned = tuned_thresholds(preds, run, val)
            write_json(self.paths.thresholds, tuned)
            for task, info in tuned.items():
                low, high = min(info["thresholds"]), max(info["thresholds"])
                shown = f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f} (per class)"
                self._log(
                    f"{task}: decision threshold {shown} tuned on {val}, macro_f1 "
                    f"{fmt_value(info['macro_f1_default'])} -> {fmt_value(info['macro_f1_tuned'])}"
                )
        splits = [self.cfg.data.val_split] + ([self.cfg.data.test_split] if self.cfg.data.test_split else [])
        model = load_model(run, device=self.device)
        results = {split: evaluate_run(run, split, model=model) for split in splits}
        self.figures.draw(*run_drawings(read_run_folder(self.paths.root)))
        if self.owns_figures:
            self.figures.wait()
            write_run_report(self.paths.root)
        return results
