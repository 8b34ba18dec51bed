"""The interface every servable run offers, and the prediction it returns.

``affectfusion predict``, batch tables, the REST API and the dashboard use only :class:`RunPredictor`
and :class:`Prediction`; each run kind (:mod:`affectfusion.runkinds`) provides its own subclass
(a fusion run's :class:`~affectfusion.serve.predictor.Predictor`, the P3 specialists composition,
the P4 vision-language wrapper), so none of them imports another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affectfusion.errors import AffectFusionError, echo
from affectfusion.inputs import KIND_HINTS
from affectfusion.rundir import RunPaths, read_metrics
from affectfusion.serve.input_limits import InputLimits

if TYPE_CHECKING:
    from affectfusion.extract import Extractor


Turn = tuple[str | None, int | None, str | None]  # conversation (group), order in it, speaker


def conversation_turns(
    n: int, speakers: Sequence[str | None] | None = None, order: Sequence[int | None] | None = None
) -> list[Turn]:
    """The turns of one conversation of ``n`` utterances: who spoke each and its place (else as listed)."""
    for name, given in (("speakers", speakers), ("turn numbers", order)):
        if given is not None and len(given) != n:
            raise AffectFusionError(f"{len(given)} {name} for {n} utterances")
    who = list(speakers) if speakers is not None else [None] * n
    place = list(order) if order is not None else list(range(n))
    return [("conversation", place[k], who[k]) for k in range(n)]


@dataclass
class Prediction:
    """One input's prediction: per task a label + probabilities, a value, or a label set.

    ``error`` is set (and ``tasks`` empty) when the input could not be used; batch callers
    report it per row instead of stopping. ``generated`` is set by models that write text (a
    vision-language run: the answer and its parsed fields, see :mod:`affectfusion.recipes.vlm.run_predictor`).
    ``faces`` is set when a face-reading modality read an image: per modality what the face step
    found (``found``, ``count``, ``used``, ``box``, ``policy``, ...: :class:`affectfusion.extract.face.FaceReport`).
    """

    id: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    modality_weights: dict[str, float] = field(default_factory=dict)
    modalities_used: list[str] = field(default_factory=list)
    error: str | None = None
    generated: dict[str, Any] | None = None
    faces: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``generated`` only when the model wrote text and ``faces`` only when a face was
        looked for (other runs' output is unchanged)."""
        d = asdict(self)
        for key in ("generated", "faces"):
            if d[key] is None:
                del d[key]
        return d

    def to_row(self) -> dict[str, Any]:
        """A flat row for CSV: ``<task>``, ``<task>_prob_<class>``, ``weight_<modality>``, then the generated
        fields (lists joined with ';'; ``generated_<field>`` if a task has that name), the face reports
        (``face_found``, ``face_count``, ``face_used``, ``face_box`` as x;y;w;h, ``face_region``; prefixed
        ``<modality>_`` when two modalities read faces), ``error``."""
        row: dict[str, Any] = {"id": self.id, "modalities": ";".join(self.modalities_used)}
        for name, out in self.tasks.items():
            if "label" in out:
                row[name] = out["label"]
            elif "labels" in out:
                row[name] = ";".join(out["labels"])
            else:
                row[name] = out["value"]
            for c, p in out.get("probabilities", {}).items():
                row[f"{name}_prob_{c}"] = p
        for m, w in self.modality_weights.items():
            row[f"weight_{m}"] = w
        for k, v in (self.generated or {}).items():
            row[f"generated_{k}" if k in row or k == "error" else k] = (
                ";".join(str(x) for x in v) if isinstance(v, list | tuple) else v
            )
        for m, report in (self.faces or {}).items():
            prefix = "face_" if len(self.faces or {}) == 1 else f"{m}_face_"
            for key in ("found", "count", "used", "region"):
                row[prefix + key] = report.get(key)
            box = report.get("box")
            row[prefix + "box"] = ";".join(str(v) for v in box) if box else ""
        row["error"] = self.error or ""
        return row


class RunPredictor(ABC):
    """What serving needs from any run folder (fusion, P3 specialists, vision-language, a plugin's):
    the CLI, batch tables, the REST API and the dashboard only use this interface."""

    modalities: list[str]
    extractors: dict[str, Extractor]  # modality -> the extractor its raw inputs go through
    load_seconds: float = 0.0
    # Whether ``predict(..., explain=True)`` adds each modality's Shapley attribution (a fusion run's
    # trust layer does); callers ask this instead of probing the class.
    supports_explain: bool = False
    # Whether :meth:`predict_conversation` reads utterances in their conversation (a fusion run does).
    supports_conversation: bool = False
    # Bounds on the work one input may cause (serve/input_limits.py); the API and dashboard set theirs.
    limits: InputLimits = InputLimits()

    @property
    @abstractmethod
    def name(self) -> str:
        """The run's config name (what the API and dashboard call the model)."""

    @property
    @abstractmethod
    def results_dir(self) -> Path:
        """The folder whose ``eval/`` and ``plots/`` hold this model's evaluation."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Name, kind, tasks (name, type, classes), ``modalities_info()``, fusion, metrics, load_seconds."""

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Split -> the metrics the run was evaluated with (``eval/<split>/metrics.json``)."""
        return run_metrics(self.results_dir)

    @abstractmethod
    def input_kind(self, modality: str) -> str:
        """The kind of raw input a modality is made from, or ``features`` if it takes arrays."""

    @abstractmethod
    def feature_dim(self, modality: str) -> int:
        """The feature dimension the modality's model reads."""

    @abstractmethod
    def predict(
        self, inputs: Sequence[Mapping[str, Any]], ids: Sequence[str] | None = None, explain: bool = False
    ) -> list[Prediction]:
        """One prediction per input (a mapping of input kind or modality -> value); errors per input.
        ``explain`` adds attribution where :attr:`supports_explain` (else :meth:`check_explain` refuses it)."""

    @property
    def accepted_inputs(self) -> dict[str, list[str]]:
        """Input kind -> the modalities it fills (``features`` modalities are named directly)."""
        out: dict[str, list[str]] = {}
        for m in self.modalities:
            out.setdefault(self.input_kind(m), []).append(m)
        return out

    def table_columns(self) -> tuple[dict[str, str], set[str]]:
        """For tables of the run's own data: column -> the input it holds (where the names differ), and
        the columns that are no input (targets, groups), which batch prediction ignores."""
        return {}, {t["name"] for t in self.info()["tasks"]}

    def predict_one(self, inputs: Mapping[str, Any], id: str = "input", explain: bool = False) -> Prediction:
        return self.predict([inputs], [id], explain)[0]

    def check_explain(self, explain: bool) -> None:
        """Refuse ``explain`` in one line where the run cannot attribute its output to its modalities."""
        if explain and not self.supports_explain:
            raise AffectFusionError(
                f"explain needs a fusion run (modality attribution); {self.name} is a {type(self).__name__} run"
            )

    def predict_conversation(
        self,
        inputs: Sequence[Mapping[str, Any]],
        ids: Sequence[str] | None = None,
        speakers: Sequence[str | None] | None = None,
        explain: bool = False,
        order: Sequence[int | None] | None = None,
    ) -> list[Prediction]:
        """One conversation's utterances (in the given order, else as listed; optionally who spoke each),
        each read with the others where :attr:`supports_conversation`; other run kinds refuse."""
        raise AffectFusionError(f"{self.name} is a {type(self).__name__} run, which reads no conversations")

    def predict_faces(self, inputs: Mapping[str, Any], id: str = "input", explain: bool = False) -> list[Prediction]:
        """One prediction per face in the input's image: a fusion run with a ``fer_cnn`` modality does it
        (:meth:`affectfusion.serve.predictor.Predictor.predict_faces`); other run kinds refuse."""
        raise AffectFusionError(
            f"predicting every face needs a fusion run with a fer_cnn face modality; {self.name} is not"
        )

    def modalities_info(self) -> dict[str, dict[str, Any]]:
        """Per modality: its input kind, the extractor's provenance (if any) and the feature size read."""
        return {
            m: {
                "input": self.input_kind(m),
                "extractor": self.extractors[m].describe() if m in self.extractors else None,
                "dim": self.feature_dim(m),
            }
            for m in self.modalities
        }


def run_metrics(results_dir: Path) -> dict[str, dict[str, Any]]:
    """Split -> ``eval/<split>/metrics.json``; a file being rewritten right now (by ``test``) is skipped."""
    out = {}
    for split in RunPaths(Path(results_dir)).evaluated_splits():
        try:
            out[split] = read_metrics(results_dir, split)
        except (AffectFusionError, OSError, ValueError):
            continue
    return out


def route_input(
    item: Mapping[str, Any], modalities: Sequence[str], accepted: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Modality -> raw value for one input given by input kind or modality name; checks keys and
    empty values. ``accepted`` maps input kind -> the modalities it fills (``accepted_inputs``)."""
    routed: dict[str, Any] = {}
    for key, value in item.items():
        if value is None or (isinstance(value, str) and not value.strip() and key != "text"):
            continue  # an empty cell in a batch file = this input is absent
        if key in modalities:
            targets = [key]
        elif key in accepted and key != "features":
            targets = accepted[key]
        else:
            valid = sorted({*modalities, *(k for k in accepted if k != "features")})
            raise AffectFusionError(f"unknown input {echo(key)}; this model takes: {', '.join(valid)}")
        if isinstance(value, str) and not value.strip():
            raise AffectFusionError(f"{key}: empty text")
        for m in targets:
            routed[m] = value
    if not routed:
        wanted = ", ".join(f"{k} ({KIND_HINTS[k]})" for k in accepted if k != "features")
        named = accepted.get("features", [])
        raise AffectFusionError(
            "no input for any of the model's modalities; give "
            + (wanted + (" or " if named else "") if wanted else "")
            + (f"features for {', '.join(named)}" if named else "")
        )
    return routed


def check_ids(inputs: Sequence[Any], ids: Sequence[str] | None) -> list[str]:
    """The ids of a batch of inputs (default: their positions); as many as there are inputs."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(inputs))]
    if len(ids) != len(inputs):
        raise AffectFusionError(f"{len(ids)} ids for {len(inputs)} inputs")
    return ids
