"""The Analyse page's helpers beyond one prediction: example inputs, banners, the per-modality table,
the run's reports and conversations, the cross-validation a run is a fold of. Streamlit-free, so tests
call them directly.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from affectfusion.errors import AffectFusionError
from affectfusion.extract import examples
from affectfusion.io import read_json
from affectfusion.rundir import CvPaths, RunPaths, TunePaths, enclosing_tune
from affectfusion.serve.dashboard.backends import Analysis, Backend, InputSlot

LOW_CONFIDENCE = 0.5  # a top class probability below this gets a warning banner (the sidebar can move it)
MAX_TURNS = 20  # a conversation on the Conversation tab: at most this many turns
# The library's own example input of each input kind (extract/examples.py: synthetic, nothing downloaded).
EXAMPLE_OF_KIND = {"text": "text", "audio": "speech_wav", "image": "face_image", "video": "face_video"}


@dataclass(frozen=True)
class Blob:
    """An in-memory file with the two things the dashboard reads from Streamlit's ``UploadedFile``."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


def example_kinds(slots: list[InputSlot]) -> list[str]:
    """The slots that have an example input, in page order."""
    return [s.key for s in slots if s.kind in EXAMPLE_OF_KIND]


def example_inputs(slots: list[InputSlot], keys: list[str]) -> dict[str, str | Blob]:
    """Slot key -> an example value (text, or a file as a :class:`Blob`) for the chosen slots."""
    by_key = {s.key: s for s in slots}
    out: dict[str, str | Blob] = {}
    with tempfile.TemporaryDirectory(prefix="affectfusion-example-") as tmp:
        for key in keys:
            made = examples.INPUTS[EXAMPLE_OF_KIND[by_key[key].kind]][0](Path(tmp))
            if not isinstance(made, str | Path):  # the kinds above have a text or a file as example
                raise AffectFusionError(f"the example of {key} is neither a text nor a file")
            out[key] = made if isinstance(made, str) else Blob(Path(made).name, Path(made).read_bytes())
    return out


@dataclass(frozen=True)
class Example:
    """Inputs for the example button and a caption saying where they came from."""

    values: dict[str, str | Blob]
    note: str


def data_example(config: dict[str, Any], slots: list[InputSlot], keys: list[str], index: int) -> Example | None:
    """The ``index``-th sample (cycling) of the run's test split (else its validation split) that has every
    chosen input: what the model really sees, unlike a generated input. None when the run's data cannot be
    read here (moved, or a features-only adapter) or no sample has those inputs."""
    # deferred: the config schema and dataset adapters load only when an example is asked for
    from affectfusion.config import validate
    from affectfusion.data import build_adapter

    try:
        cfg = validate(config)
        split = cfg.data.test_split or cfg.data.val_split
        if not split:
            return None
        root = Path(cfg.data.root).expanduser() if cfg.data.root else None
        samples = build_adapter(cfg.data).load(root, split)
    except (AffectFusionError, OSError, ValueError):
        return None
    by_key = {s.key: s for s in slots}
    usable = [s for s in samples if all(by_key[k].modalities and by_key[k].modalities[0] in s.raw for k in keys)]
    if not usable:
        return None
    sample = usable[index % len(usable)]
    values: dict[str, str | Blob] = {}
    for key in keys:
        raw = sample.raw[by_key[key].modalities[0]]
        if isinstance(raw, Path):
            if not raw.is_file():
                return None
            values[key] = Blob(raw.name, raw.read_bytes())
        elif isinstance(raw, str):
            values[key] = raw
        else:  # a signal held in memory: no form field takes it
            return None
    truth = ", ".join(f"{task} = {value}" for task, value in sample.targets.items())
    note = f"Sample {sample.id} of the {split} split ({index % len(usable) + 1} of {len(usable)})"
    return Example(values, note + (f"; true {truth}" if truth else ""))


def pick_example(config: dict[str, Any], slots: list[InputSlot], keys: list[str], index: int) -> Example:
    """A sample of the run's own data when it can be read, else the library's generated input (said so)."""
    return data_example(config, slots, keys, index) or Example(
        example_inputs(slots, keys), "A generated example (the library's own synthetic input, not from this run's data)"
    )


def banners(a: Analysis, threshold: float = LOW_CONFIDENCE) -> list[tuple[str, str]]:
    """(level, message) banners for an analysis: no face found (error), low confidence (warning)."""
    out = []
    for m in a.no_face:
        out.append(("error", f"No face found in the {m} input: this prediction does not rest on a face."))
    if a.error:
        return out
    for task, out_ in a.raw.get("tasks", {}).items():
        # a calibration or conformal file the predictor left out (refused, stale, corrupt): say why
        out.extend(("warning", f"{task}: {w}") for w in out_.get("trust_warnings", []))
        probs = out_.get("probabilities")
        if probs and "label" in out_ and max(probs.values()) < threshold:
            top = max(probs.values())
            out.append(
                ("warning", f"Low confidence for {task}: the top class has probability {top:.2f} (< {threshold:.2f}).")
            )
    return out


def per_modality_table(a: Analysis, slots: list[InputSlot]) -> pd.DataFrame:
    """One row per source (the fused answer, then each input alone): per task its label and confidence,
    plus the trust layer's Shapley attribution of each input (summed over the modalities it fills)."""
    if not a.alone or a.error:
        return pd.DataFrame()
    labels = {s.key: s.label.split(" →")[0] for s in slots}
    rows = [{"source": "fused (all inputs)", **_task_cells(a.raw)}]
    for key, pred in a.alone.items():
        row: dict[str, Any] = {"source": f"{labels.get(key, key)} alone", **_task_cells(pred)}
        for task, values in a.attribution.items():
            modalities = next((s.modalities for s in slots if s.key == key), (key,))
            row[f"{task}: attribution"] = sum(values.get(m, 0.0) for m in modalities)
        rows.append(row)
    return pd.DataFrame(rows)


def _task_cells(pred: dict[str, Any]) -> dict[str, Any]:
    if pred.get("error"):
        return {"error": pred["error"]}
    cells: dict[str, Any] = {}
    for task, out in pred.get("tasks", {}).items():
        if "label" in out:
            cells[task] = out["label"]
            cells[f"{task}: probability"] = max(out["probabilities"].values())
        elif "labels" in out:
            cells[task] = ", ".join(out["labels"]) or "(none)"
        else:
            cells[task] = out["value"]
    return cells


def run_reports(results_dir: Path) -> list[tuple[str, Path]]:
    """The run's analysis reports that exist (title, file): ``report.md`` and each ``analysis/*/report.html``."""
    paths = RunPaths(results_dir)
    found = [("Run report (Markdown)", paths.report)] if paths.report.is_file() else []
    tune = enclosing_tune(results_dir)
    if tune is not None:  # a trial or a seed of a tune: the search it came from
        found.append((f"Tune report of {tune.name} (Markdown)", TunePaths(tune).report))
    for name in paths.analysis_names():
        html = paths.analysis_report(name)
        if html.is_file():
            found.append((f"Analysis of {name} (HTML)", html))
    return found


def run_conversation(backend: Backend, turns: pd.DataFrame) -> pd.DataFrame:
    """Turns (``speaker``, ``text``; empty text rows skipped) -> each turn's prediction in context."""
    turns = turns.fillna("")
    rows = [(str(r["speaker"]).strip() or None, str(r["text"]).strip()) for _, r in turns.iterrows()]
    rows = [(speaker, text) for speaker, text in rows if text]
    if not rows:
        raise AffectFusionError("enter at least one turn with text")
    if len(rows) > MAX_TURNS:
        raise AffectFusionError(f"{len(rows)} turns: at most {MAX_TURNS} per conversation")
    preds = backend.predict_conversation([t for _, t in rows], [s for s, _ in rows])
    table = [
        {"turn": k + 1, "speaker": speaker or "", "text": text, **_task_cells(p.to_dict())}
        for k, ((speaker, text), p) in enumerate(zip(rows, preds, strict=True))
    ]
    return pd.DataFrame(table)


def cv_of(run_dir: Path) -> dict[str, Any] | None:
    """The summary (cv.json) of the cross-validation whose fold ``run_dir`` is; None for any other run."""
    cv = CvPaths(Path(run_dir).parent)
    if not cv.summary.is_file():
        return None
    summary = read_json(cv.summary)
    return summary if any(f.get("run_dir") == Path(run_dir).name for f in summary.get("folds", [])) else None


def cv_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Every metric over folds: mean, std, 95 % interval and the per-fold values."""
    rows = []
    for name, m in summary["metrics"].items():
        ci = m.get("ci95") or [None, None]
        values = {f"fold {f['fold']}": v for f, v in zip(summary["folds"], m["values"], strict=True)}
        rows.append(
            {"metric": name, "mean": m["mean"], "std": m["std"], "ci95_low": ci[0], "ci95_high": ci[1], **values}
        )
    return pd.DataFrame(rows)
