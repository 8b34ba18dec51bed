"""``predict`` and ``serve api|dashboard``: prediction from the command line, the REST API and the dashboard.

Servers bind 127.0.0.1 unless ``--host`` says otherwise: a model server on every interface is a
choice the user makes, not a default. The serving library loads only when a command runs.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from affectfusion.cli.common import DeviceOption, console, err_console
from affectfusion.errors import AffectFusionError
from affectfusion.inputs import INPUT_KINDS, INPUTS  # the input table: no heavy imports
from affectfusion.serve.input_limits import InputLimits
from affectfusion.serve.ports import check_port

if TYPE_CHECKING:
    from affectfusion.serve.predictor import Prediction

# Every input flag of ``predict`` (--text, --audio, ...), as the input table names them.
INPUT_FLAGS = "/".join(v.cli_flag for v in INPUTS.values() if v.cli_flag)


def input_option(kind: str) -> Any:
    """``predict``'s option for one kind of input: its flag and help from the input table."""
    return typer.Option(INPUTS[kind].cli_flag, help=INPUTS[kind].label)


def predict_command(
    run: Annotated[
        Path,
        typer.Argument(
            help="Run directory written by `affectfusion train` (a fusion run, a specialists output folder "
            "or a vision-language run)"
        ),
    ],
    text: Annotated[str | None, input_option("text")] = None,
    audio: Annotated[Path | None, input_option("audio")] = None,
    image: Annotated[Path | None, input_option("image")] = None,
    video: Annotated[Path | None, input_option("video")] = None,
    eeg: Annotated[Path | None, input_option("signal")] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            INPUTS["features"].cli_flag, help="Pre-extracted features for a modality: MODALITY=file.npy (repeatable)"
        ),
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option(help=f"CSV/JSONL with one input per row: columns id and {'/'.join(INPUT_KINDS)} or modality"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Predictions CSV for --batch (default: <batch>.predictions.csv)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the single prediction as JSON")] = False,
    limit: Annotated[
        list[str] | None,
        typer.Option(help="Raise or lower a limit on one input's work, NAME=VALUE (e.g. max_audio_seconds=600)"),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for --batch")] = True,
    device: DeviceOption = "cpu",
    explain: Annotated[
        bool, typer.Option(help="Shapley attribution of the prediction to each modality (fusion runs)")
    ] = False,
    all_faces: Annotated[
        bool,
        typer.Option(
            "--all-faces", help="One prediction per face in --image, largest first (at most --limit max_faces=20)"
        ),
    ] = False,
) -> None:
    """Predict with a trained run from raw media or features, for any subset of its modalities.

    Inputs go through the same extractors the run was trained with. Rows of a --batch table that
    cannot be used get their reason in the `error` column; the others are predicted. A
    vision-language run takes --image and also prints the answer it generated.
    """
    # deferred: torch and the run's extractors load only when predicting; pandas only for --batch
    from affectfusion.serve.predictor import load_predictor

    single = {"text": text, "audio": audio, "image": image, "video": video, "signal": eeg}
    single = {k: (str(v) if isinstance(v, Path) else v) for k, v in single.items() if v is not None}
    for item in features or []:
        if "=" not in item:
            raise AffectFusionError(f"--features expects MODALITY=file.npy, got {item!r}")
        modality, path = item.split("=", 1)
        single[modality.strip()] = path
    if batch is not None and single:
        raise AffectFusionError(f"give either --batch or single inputs ({INPUT_FLAGS}), not both")
    if all_faces and image is None:
        raise AffectFusionError("--all-faces predicts every face in an --image; give one")
    if batch is None and not single:
        raise AffectFusionError(f"nothing to predict: give {INPUT_FLAGS} or --batch")
    limits = InputLimits.parse(limit)  # a mistyped limit is a one-line error before the model loads
    # a fusion run, a specialists folder or a VLM run; extractors load when an input needs them
    predictor = load_predictor(run, device=device, warm=False)
    predictor.limits = limits
    if batch is not None:
        # pandas and the table reader: only for --batch
        from affectfusion.io import write_csv
        from affectfusion.serve.batch import predict_table

        df = predict_table(predictor, batch, progress=progress)
        out = out or batch.with_suffix(".predictions.csv")
        write_csv(df, out)
        failed = int((df["error"] != "").sum())
        err_console.print(f"{len(df)} rows, {len(df) - failed} predicted, {failed} with errors -> {out}")
        return
    if explain and not predictor.supports_explain:
        raise AffectFusionError(f"--explain needs a fusion run; {run} is a {type(predictor).__name__} run")
    if all_faces:
        results = predictor.predict_faces(single, explain=explain)
    else:
        results = [predictor.predict_one(single, explain=explain)]
    if all(r.error for r in results):
        raise AffectFusionError(results[0].error or "")
    if as_json:
        shown = [r.to_dict() for r in results]
        console.print_json(json.dumps(shown if all_faces else shown[0]))
        return
    for r in results:
        if all_faces:
            console.rule(r.id)
        print_prediction(r)


def print_prediction(p: Prediction) -> None:
    """Per task the label (or value) and the class probabilities, then the modality weights; for a
    model that writes text (a vision-language run), its answer and the fields parsed from it."""
    from affectfusion.serve.trust_view import trust_lines  # pydantic schema module: not for --help

    for name, out in p.tasks.items():
        if "value" in out:
            console.print(f"[bold]{name}[/]: {out['value']:.4g}")
            continue
        shown = out.get("label") or ", ".join(out.get("labels", [])) or "(none)"
        table = Table(title=f"{name}: {shown}", title_justify="left")
        # A VLM's "probabilities" are the emotion vector it wrote: intensities, not a distribution.
        table.add_column("emotion" if p.generated is not None else "class")
        table.add_column("intensity" if p.generated is not None else "probability", justify="right")
        for c, prob in sorted(out["probabilities"].items(), key=lambda kv: -kv[1]):
            table.add_row(c, f"{prob:.3f}")
        if out["probabilities"]:
            console.print(table)
        else:
            console.print(f"[bold]{name}[/]: {shown}")
        for line in trust_lines(out):  # calibrated probabilities, conformal set, attribution
            console.print(f"  {line}", highlight=False, markup=False)
    if p.generated is not None:
        console.print(f"generated: {p.generated.get('text', '')}", highlight=False, soft_wrap=True)
        for key, value in p.generated.items():
            if key != "text":
                shown_value = (", ".join(map(str, value)) or "(none)") if isinstance(value, list) else value
                console.print(f"{key}: {shown_value}", highlight=False)
    if p.modality_weights:
        weights = ", ".join(f"{m} {w:.2f}" for m, w in p.modality_weights.items())
        console.print(f"modality weights: {weights}")
    console.print(f"modalities used: {', '.join(p.modalities_used)}")
    for m, f in (p.faces or {}).items():
        console.print(f"{m}: {face_line(f)}", highlight=False)
    if p.error:
        console.print(f"error: {p.error}", highlight=False)


def face_line(f: dict[str, Any]) -> str:
    """What the face step did, in words (a face report: :class:`affectfusion.extract.face.FaceReport`)."""
    if not f["found"]:
        done = {"whole_frame": "the whole image was read", "missing_modality": "the image was left out"}
        what = done.get(f["policy"], "not predicted")
        return f"no face found ({f['detector']} detector): {what} (no_face: {f['policy']})"
    read = "the whole image read (it is a face crop)" if f["region"] == "whole_frame" else "cropped"
    return f"{f['count']} face(s) found ({f['detector']} detector), face {f['used']} at {f['box']} {read}"


RunArg = Annotated[
    Path,
    typer.Argument(
        help="Run directory written by `affectfusion train` (a fusion run, a specialists output folder "
        "or a vision-language run)"
    ),
]


def _check_bind(host: str, port: int) -> None:
    """Refuse a port out of range; warn when the server will be reachable from other machines."""
    if not 0 <= port <= 65535:
        raise AffectFusionError(f"--port must be between 0 and 65535, got {port}")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        err_console.print(
            f"[yellow]warning:[/] binding {host}: the server is reachable from other machines; "
            "it has no authentication",
            highlight=False,
        )


def api_command(
    run: RunArg,
    host: Annotated[str, typer.Option(help="Interface to bind (default: loopback only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted file, in MB (images: at most 50)")] = 50,
    max_batch: Annotated[int, typer.Option(help="Most items in one batch request")] = 64,
    limit: Annotated[
        list[str] | None,
        typer.Option(help="Raise or lower a limit on one input's work, NAME=VALUE (see GET /info limits.inputs)"),
    ] = None,
    max_pending: Annotated[int, typer.Option(help="Requests queued or running before a 503")] = 64,
    request_timeout: Annotated[float, typer.Option(help="Seconds a request waits for the model before a 503")] = 60,
    idle_timeout: Annotated[float, typer.Option(help="Seconds of client silence before it is cut off (408)")] = 30,
    read_timeout: Annotated[
        float, typer.Option(help="Seconds a request's headers and body may take in all, from its first byte (408)")
    ] = 120,
    max_client_connections: Annotated[
        int, typer.Option(help="Connections open at once from one client address; more get 429")
    ] = 16,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    device: DeviceOption = "cpu",
) -> None:
    """REST API: GET /health, GET /info, POST /predict, /predict/batch, /predict/batch/files; docs at /docs."""
    _check_bind(host, port)
    check_port(host, port)  # a port in use is one line now, not uvicorn's bind error after the model has loaded
    # deferred: the web stack loads only when serving
    import uvicorn

    from affectfusion.serve.api import create_app
    from affectfusion.serve.api.connections import guarded_protocol
    from affectfusion.serve.predictor import load_predictor

    if max_upload_mb <= 0 or max_batch < 1:
        raise AffectFusionError("--max-upload-mb must be > 0 and --max-batch >= 1")
    if read_timeout <= 0 or max_client_connections < 1:
        raise AffectFusionError("--read-timeout must be > 0 and --max-client-connections >= 1")
    limits = InputLimits.parse(limit)
    predictor = load_predictor(run, device=device)  # a wrong folder is a one-line error before uvicorn starts
    app = create_app(
        predictor,
        max_upload_mb=max_upload_mb,
        max_batch=max_batch,
        limits=limits,
        max_pending=max_pending,
        request_timeout_s=request_timeout,
        idle_timeout_s=idle_timeout,
        read_timeout_s=read_timeout,
    )
    err_console.print(
        f"serving {predictor.name} ({run}) at http://{host}:{port} (docs: /docs); "
        f"model loaded in {predictor.load_seconds:.2f} s",
        highlight=False,
    )
    # One process: the model is loaded once and calls into it are serialised (see serve/api/app.py);
    # an idle keep-alive connection is closed after 5 s, as an idle upload is after --idle-timeout; a
    # request's headers must be in within --read-timeout, and one address holds --max-client-connections.
    protocol = guarded_protocol(read_timeout, max_client_connections)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1, timeout_keep_alive=5, http=protocol)


def dashboard_command(
    run: RunArg,
    host: Annotated[str, typer.Option(help="Interface to bind (default: loopback only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8501,
    device: DeviceOption = "cpu",
) -> None:
    """Web dashboard: single input, batch with CSV export, model documentation."""
    # deferred: streamlit loads only when serving
    from affectfusion.serve.dashboard import launch

    _check_bind(host, port)
    launch(run, host, port, device)


serve_app = typer.Typer(help="Serve a trained run: REST API or web dashboard.", no_args_is_help=True)
serve_app.command("api")(api_command)
serve_app.command("dashboard")(dashboard_command)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
    app.add_typer(serve_app, name="serve")
