"""The Model page's "How to use this run" snippets: CLI, batch table, REST API and Python.

Flags, example values and accepted inputs come from the input table (:mod:`affectfusion.serve.input_limits`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from affectfusion.inputs import INPUT_KINDS, INPUTS

if TYPE_CHECKING:
    from affectfusion.serve.base import RunPredictor

MEDIA = INPUT_KINDS  # inputs given by kind (features are given per modality)


def predictor_usage(
    run_dir: Path, predictor: RunPredictor, slot_kinds: Mapping[str, list[str]]
) -> list[tuple[str, str, str]]:
    """(title, language, code) blocks for a run served through its :class:`RunPredictor`; ``slot_kinds``:
    the Analyse page's input kind -> the modalities it fills."""
    run = shlex.quote(str(run_dir))
    accepted = {k: list(m) for k, m in slot_kinds.items() if k != "features"}
    accepted["features"] = predictor.accepted_inputs.get("features", [])
    flags = [f"{INPUTS[k].cli_flag} {shlex.quote(INPUTS[k].example)}" for k in accepted if k in MEDIA]
    flags += [f"--features {m}={m}.npy" for m in accepted.get("features", [])]
    columns = ["id", *(k for k in accepted if k != "features"), *accepted.get("features", [])]
    example = {k: INPUTS[k].example if k in MEDIA else f"{k}.npy" for k in columns if k != "id"}
    info = predictor.info()
    if "specialists" in info or info.get("kind") == "ensemble":
        composed = "specialists, then fusion" if "specialists" in info else "every member, their mean"
        load_code = (
            "from affectfusion.serve.predictor import load_predictor\n\n"
            f"predictor = load_predictor({str(run_dir)!r})  # {composed}\n"
        )
    else:
        load_code = f"from affectfusion.serve import Predictor\n\npredictor = Predictor.load({str(run_dir)!r})\n"
    curl = [f"-F {k}={shlex.quote(v) if k == 'text' else '@' + v}" for k, v in example.items() if k in MEDIA] + [
        f"-F features_{m}=@{m}.npy" for m in accepted.get("features", [])
    ]
    return [
        (
            "One input from the command line (add `--json` for JSON)",
            "bash",
            f"affectfusion predict {run} {' '.join(flags)}",
        ),
        (
            f"A table of inputs (CSV or JSONL; columns {', '.join(columns)}; file paths relative to the table; "
            "empty cells = not given) to a predictions CSV, the same file the Batch tab downloads",
            "bash",
            f"affectfusion predict {run} --batch inputs.csv --out predictions.csv",
        ),
        (
            "REST API (docs at http://127.0.0.1:8000/docs) and this dashboard",
            "bash",
            f"affectfusion serve api {run}\n"
            f"curl {' '.join(curl)} http://127.0.0.1:8000/predict\n"
            f"affectfusion serve dashboard {run}",
        ),
        (
            "Python",
            "python",
            load_code + f"prediction = predictor.predict_one({example!r})\n"
            "print(prediction.tasks, prediction.modality_weights, prediction.error)",
        ),
    ]


def vlm_usage(run_dir: Path) -> list[tuple[str, str, str]]:
    """(title, language, code) blocks for a vision-language run."""
    run = shlex.quote(str(run_dir))
    return [
        (
            "One image from the command line (add `--json` for JSON), or a table of images "
            "(columns id, image; paths relative to the table) to a predictions CSV",
            "bash",
            f"affectfusion predict {run} --image face.jpg\n"
            f"affectfusion predict {run} --batch images.csv --out predictions.csv",
        ),
        (
            "REST API (docs at http://127.0.0.1:8000/docs) and this dashboard",
            "bash",
            f"affectfusion serve api {run}\n"
            "curl -F image=@face.jpg http://127.0.0.1:8000/predict\n"
            f"affectfusion serve dashboard {run}",
        ),
        (
            "Python",
            "python",
            "from affectfusion.recipes.vlm.predictor import VLMPredictor\n\n"
            f"predictor = VLMPredictor.load({str(run_dir)!r})\n"
            "for p in predictor.predict(['face1.jpg', 'face2.png']):\n"
            "    print(p.label, p.emotions, p.emotion_vector, p.action_units)\n\n"
            "# or as every run is served (CLI, API): a Prediction with the answer under `generated`\n"
            "from affectfusion.serve import load_predictor\n\n"
            f"prediction = load_predictor({str(run_dir)!r}).predict_one({{'image': 'face1.jpg'}})\n"
            "print(prediction.tasks, prediction.generated, prediction.error)",
        ),
    ]
