"""How the trust fields of a prediction are shown: API schema, terminal lines, dashboard parts.

The fields themselves come from :class:`affectfusion.analysis.trust_layer.TrustLayer` through the
Predictor: ``calibrated_probabilities`` (+ ``temperature``), ``prediction_set`` (conformal classes,
``uncertain`` labels for multi-label, target ``coverage``), ``interval`` (regression),
``trust_warnings`` (why one of them is missing) and, when asked, ``attribution`` (Shapley value of
each modality).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class PredictionSetOut(BaseModel):
    classes: list[str] = Field(description="the conformal prediction set (multi-label: labels surely present)")
    uncertain: list[str] | None = Field(None, description="multi-label: labels whose set holds both present and absent")
    coverage: float = Field(description="the set holds the true class with this probability (calibrated on validation)")
    method: str = Field(description="APS, RAPS or per-label")


class IntervalOut(BaseModel):
    low: float
    high: float
    coverage: float = Field(description="the interval holds the true value with this probability")
    method: str


class AttributionOut(BaseModel):
    values: dict[str, float | list[float]] = Field(
        description="modality -> Shapley value (multi-label: one per label); they sum to output - base"
    )
    base: float | list[float] = Field(description="the output with every modality missing")
    output: float | list[float] = Field(description="the output with the modalities given")
    explains: str = Field(description="which output is explained")
    exact: bool = Field(description="every modality subset evaluated (else sampled permutations)")
    method: Literal["exact", "sampled"] = Field(
        description="exact: every subset; sampled: permutations (many modalities, or an exact one over "
        "max_explain_seconds)"
    )
    permutations: int | None = Field(None, description="sampled: the number of seeded permutations")
    standard_error: dict[str, float | list[float]] | None = Field(
        None, description="sampled: modality -> standard error of its value (over antithetic permutation pairs)"
    )


class TrustFields(BaseModel):
    """Mixed into the API's TaskOutput."""

    calibrated_probabilities: dict[str, float] | None = Field(
        None, description="class -> probability after the run's temperature scaling (`affectfusion calibrate`)"
    )
    temperature: float | None = Field(None, description="the temperature fitted on the validation split")
    prediction_set: PredictionSetOut | None = Field(None, description="conformal set (`test --conformal`)")
    interval: IntervalOut | None = Field(None, description="regression: conformal interval (`test --conformal`)")
    attribution: AttributionOut | None = Field(None, description="per-modality Shapley values (explain=true)")
    trust_warnings: list[str] | None = Field(
        None,
        description="why a calibrated probability or conformal set is missing: the run's trust file refused "
        "an unfit calibration split, or is unreadable, invalid or stale (the prediction is served without it)",
    )


def trust_lines(out: dict[str, Any]) -> list[str]:
    """Terminal lines for one task's trust fields (``predict`` prints them after the probabilities)."""
    lines = []
    if "calibrated_probabilities" in out:
        top = sorted(out["calibrated_probabilities"].items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{c} {p:.3f}" for c, p in top)
        lines.append(f"calibrated (T = {out['temperature']:.2f}): {shown}")
    if "prediction_set" in out:
        s = out["prediction_set"]
        extra = f"; uncertain: {', '.join(s['uncertain'])}" if s.get("uncertain") else ""
        lines.append(
            f"prediction set ({s['coverage']:.0%} coverage, {s['method']}): {{{', '.join(s['classes'])}}}{extra}"
        )
    if "interval" in out:
        iv = out["interval"]
        lines.append(f"interval ({iv['coverage']:.0%} coverage): [{iv['low']:.4g}, {iv['high']:.4g}]")
    lines += [f"trust: {w}" for w in out.get("trust_warnings", [])]
    if "attribution" in out:
        a = out["attribution"]
        values = ", ".join(f"{m} {_scalar(v):+.3f}" for m, v in a["values"].items())
        lines.append(
            f"attribution ({a['explains']}; base {_scalar(a['base']):.3f} -> {_scalar(a['output']):.3f}): {values}"
        )
        if a.get("permutations"):
            worst = max(max(v) if isinstance(v, list) else v for v in a["standard_error"].values())
            lines.append(f"  sampled from {a['permutations']} permutations: standard error up to {worst:.3f}")
    return lines


def _scalar(v: float | list[float]) -> float:
    """A multi-label value list summed, so one line shows it."""
    return float(sum(v)) if isinstance(v, list) else float(v)


def dashboard_parts(
    tasks: dict[str, dict[str, Any]],
) -> tuple[dict[str, dict[str, float]], dict[str, str], dict[str, dict[str, float]]]:
    """(calibrated probability charts, prediction-set texts, attribution bars) per task, for the Analyse page."""
    charts, sets, bars = {}, {}, {}
    for task, out in tasks.items():
        if "calibrated_probabilities" in out:
            charts[f"{task} (calibrated, T = {out['temperature']:.2f})"] = dict(out["calibrated_probabilities"])
        if "prediction_set" in out:
            s = out["prediction_set"]
            sets[task] = f"{{{', '.join(s['classes'])}}} ({s['coverage']:.0%} coverage)"
        elif "interval" in out:
            iv = out["interval"]
            sets[task] = f"[{iv['low']:.4g}, {iv['high']:.4g}] ({iv['coverage']:.0%} coverage)"
        if "attribution" in out:
            bars[task] = {m: _scalar(v) for m, v in out["attribution"]["values"].items()}
    return charts, sets, bars
