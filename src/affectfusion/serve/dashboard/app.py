"""The Streamlit dashboard script: ``streamlit run app.py -- RUN_DIR`` (see ``serve.dashboard.launch``).

Tabs over one run: *Analyse* (one input: text and/or media, uploaded, captured with the webcam /
microphone or an example -> prediction, banners for no face / low confidence, audio playback, each input
alone next to the fused answer, face crop, class probabilities, modality weights, a video's timeline,
raw JSON), *Batch* (many files of one kind, or a CSV/JSONL table
plus the files it references -> table -> CSV download, the same CSV as ``affectfusion predict
--batch``), *Model* (summary, metrics per split, confusion matrices, the cross-validation it is a fold
of, reports, config, how to use the run), and
*Conversation* for runs with a context stage (turns -> each turn's prediction in context).

Page logic lives in small functions (``run_analysis``, ``run_table_batch``, ...) that tests call
directly or through ``streamlit.testing``. Every prediction call is guarded: bad input becomes a
readable ``st.error``, never a traceback (and ``client.showErrorDetails`` is ``none`` anyway).
Uploads are written to a temporary folder only for the duration of one prediction.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from affectfusion.errors import AffectFusionError
from affectfusion.rundir import RunPaths
from affectfusion.serve.dashboard.actions import (
    BatchResult,
    guarded,
    run_file_batch,
    run_table_batch,
)
from affectfusion.serve.dashboard.backends import (
    Analysis,
    Backend,
    InputSlot,
    confusions,
    load_backend,
    metrics_table,
)
from affectfusion.serve.dashboard.faces import FacePreview
from affectfusion.serve.dashboard.widgets import (
    analyse,
    conversation_page,
    cv_section,
    examples_row,
    input_widget,
    render_banners,
    render_extras,
    reports_section,
    sidebar,
)

log = logging.getLogger("affectfusion.dashboard")
T = TypeVar("T")
TABS = ("Analyse", "Batch", "Model")


def run_dir_from_argv(argv: Sequence[str]) -> Path:
    """The run folder given after ``--`` on the ``streamlit run`` command line."""
    args = [a for a in argv if a != "--"]
    if len(args) != 1:
        raise AffectFusionError("usage: streamlit run app.py -- RUN_DIR (or: affectfusion serve dashboard RUN)")
    return Path(args[0])


@st.cache_resource(show_spinner="Loading the model…")
def get_backend(run_dir: str) -> Backend:
    """One backend (model, extractors) per server process and run, shared by every browser session."""
    return load_backend(Path(run_dir))


def end_session_with_its_browser() -> None:
    """A browser that goes away ends its session, so Streamlit frees the session's uploads, media and
    state (analyses, batch tables) at once; the model stays, shared (:func:`get_backend`).

    By default Streamlit keeps a disconnected session for a reconnect (``server.disconnectedSessionTTL``)
    and may then drop it without shutting it down, so its uploaded files stayed in memory (measured:
    5 of 10 closed sessions' uploads still held 130 s after the last one closed). The price: a browser
    that loses its connection starts a new session (its results are gone).
    """
    ctx = get_script_run_ctx()
    if ctx is not None and runtime.exists():  # not under streamlit.testing (no server)
        server = runtime.get_instance()
        if hasattr(server, "mark_session_nonresumable"):  # not in older Streamlit releases
            server.mark_session_nonresumable(ctx.session_id)


# -- Analyse --------------------------------------------------------------------------------------


def analyse_page(backend: Backend) -> None:
    # Upload widgets take any file: with ``type=`` Streamlit raises (a red exception box) when a
    # client sends another extension anyway; checking here turns every wrong file into a message.
    slots = backend.slots()
    examples_row(backend)
    with st.form("analyse", border=True):
        values = {slot.key: input_widget(slot) for slot in slots}
        submitted = st.form_submit_button("Analyse", type="primary")
    if submitted:
        with st.spinner("Analysing…"):
            analyse(backend, values)
    analysis = st.session_state.get("analysis")
    if analysis is not None:
        render_analysis(analysis, slots)


def render_analysis(a: Analysis, slots: list[InputSlot] | None = None) -> None:
    """One analysis; with the form's ``slots``, also banners, playback, each input alone and a timeline."""
    render_banners(a)
    if a.error:
        st.error(f"Could not analyse this input: {a.error}")
    if a.headline and not a.error:
        with st.container(key="prediction"):
            for col, (task, value) in zip(st.columns(len(a.headline)), a.headline.items(), strict=True):
                col.metric(task, value)
    if a.sets and not a.error:  # conformal prediction sets / intervals
        with st.container(key="prediction_set"):
            for task, text in a.sets.items():
                st.markdown(f"**{task}** prediction set: {text}")
    if slots is not None:
        render_extras(a, slots)
    if a.faces:
        st.subheader("Face")
        for face in a.faces:
            render_face(face)
    if a.generated_text is not None:
        st.subheader("Generated text")
        st.code(a.generated_text, language=None, wrap_lines=True)
    if a.fields:
        st.dataframe(
            pd.DataFrame({"field": list(a.fields), "value": [_cell(v) for v in a.fields.values()]}), hide_index=True
        )
    for title, values in a.charts.items():
        st.subheader(f"{title}: {'probabilities' if a.probability_charts else 'values'}")
        show_bars(values, "class", "probability" if a.probability_charts else "value", a.probability_charts)
    for task, values in a.attribution.items():  # Shapley attribution, a bar per modality
        with st.container(key=f"attribution_{task}"):
            st.subheader(f"{task}: modality attribution")
            st.caption("Shapley value of each modality for the predicted class's probability (0 = not given).")
            show_bars(values, "modality", "Shapley value", False)
    if a.weights:
        st.subheader("Modality weights")
        st.caption("How much the fusion relied on each modality for this input (0 = not given).")
        show_bars(a.weights, "modality", "weight", True)
    if a.raw:
        with st.expander("Raw JSON (as the API returns it)"):
            st.json(a.raw)


def render_face(face: FacePreview) -> None:
    left, right = st.columns(2)
    left.image(face.annotated, caption=f"{face.modality}: {face.caption}", width=320)
    if face.model_input is None:
        right.warning(face.caption)
        return
    shown = face.model_input
    scale = max(1, 192 // shown.shape[0])  # small crops enlarged by whole pixels, so they stay exact
    if scale > 1:
        shown = np.repeat(np.repeat(shown, scale, axis=0), scale, axis=1)
    right.image(shown, caption=face.model_caption, width=min(320, shown.shape[1]))


def bar_chart(values: dict[str, float], name: str, measure: str, unit_range: bool) -> alt.LayerChart:
    """Horizontal bars, largest first, each labelled with its value."""
    df = pd.DataFrame({name: list(values), measure: list(values.values())})
    x = alt.X(f"{measure}:Q", scale=alt.Scale(domain=[0, 1]) if unit_range else alt.Undefined)
    y = alt.Y(f"{name}:N", sort="-x", title=None)
    base = alt.Chart(df).encode(x=x, y=y, tooltip=[name, alt.Tooltip(measure, format=".3f")])
    labels = base.mark_text(align="left", dx=4).encode(text=alt.Text(f"{measure}:Q", format=".3f"))
    return base.mark_bar() + labels


def show_bars(values: dict[str, float], name: str, measure: str, unit_range: bool) -> None:
    # An explicit pixel height: with Streamlit's default ("content") the bands collapse to a line.
    st.altair_chart(bar_chart(values, name, measure, unit_range), height=70 + 30 * len(values), width=720)


def _cell(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) or "(none)"
    return str(v)


# -- Batch ----------------------------------------------------------------------------------------


def batch_page(backend: Backend) -> None:
    files_col, table_col = st.columns(2, border=True)
    result: BatchResult | None = None
    with files_col:
        st.markdown("**Many files of one kind**: one row per file, the file name as id.")
        slots = backend.batch_slots()
        if slots:
            slot = slots[0]
            if len(slots) > 1:
                slot = st.selectbox("Kind", slots, format_func=lambda s: s.label, key="batch_kind")
            uploads = st.file_uploader(slot.label, accept_multiple_files=True, key=f"batch_files_{slot.key}")
            with st.container(key="batch_files_count"):
                st.caption(f"{len(uploads or [])} file(s) uploaded")
            if st.button("Predict files", key="batch_run_files", type="primary"):
                with st.spinner("Predicting…"):
                    result = run_file_batch(backend, slot, uploads or [])
        else:
            st.info("This model reads text only: use a table.")
    with table_col:
        columns = ["id", *(s.key for s in backend.slots())]
        st.markdown(
            f"**A table (CSV/JSONL)** with columns {', '.join(f'`{c}`' for c in columns)} (empty cell = not given), "
            "plus the media files it names."
        )
        table = st.file_uploader("Table of inputs (CSV/JSONL)", key="batch_table")
        media = st.file_uploader("Media files named in the table", accept_multiple_files=True, key="batch_media")
        with st.container(key="batch_media_count"):
            st.caption(f"{len(media or [])} media file(s) uploaded")
        if st.button("Predict table", key="batch_run_table", type="primary"):
            with st.spinner("Predicting…"):
                result = run_table_batch(backend, table, media or [])
    if result is not None:
        st.session_state["batch"] = result
    render_batch(st.session_state.get("batch"))


def render_batch(result: BatchResult | None) -> None:
    if result is None:
        return
    for w in result.warnings:
        st.warning(w)
    if result.error:
        st.error(f"Could not run the batch: {result.error}")
        return
    assert result.table is not None
    n = len(result.table)
    with st.container(key="batch_summary"):
        st.markdown(
            f"**{n} row(s): {n - result.failed} predicted, {result.failed} with errors** (see the error column)"
        )
    st.dataframe(result.table, hide_index=True)
    st.download_button(
        "Download CSV",
        data=result.csv,
        file_name="predictions.csv",
        mime="text/csv",
        key="batch_download",
        on_click="ignore",
        type="primary",
    )


# -- Model ----------------------------------------------------------------------------------------


def model_page(backend: Backend) -> None:
    summary = backend.summary()
    st.subheader(f"Run `{backend.name}`")
    st.caption(str(backend.run_dir))
    for key, value in summary.items():
        if key in ("tasks", "modalities"):
            continue
        if value not in (None, "", {}, []):
            st.markdown(f"**{key}:** {_cell(value) if not isinstance(value, dict) else ''}")
            if isinstance(value, dict):
                st.json(value, expanded=False)
    if summary.get("tasks"):
        tasks = pd.DataFrame(
            [
                {"task": t["name"], "type": t["type"], "classes": ", ".join(t.get("classes") or [])}
                for t in summary["tasks"]
            ]
        )
        st.dataframe(tasks, hide_index=True)
    if summary.get("modalities"):
        st.dataframe(pd.DataFrame(summary["modalities"]), hide_index=True)

    st.subheader("Metrics")
    metrics = backend.metrics()
    table = metrics_table(metrics)
    if table.empty:
        st.info("No evaluation results yet (no eval/<split>/metrics.json): run `affectfusion test` on this run.")
    else:
        with st.container(key="metrics"):
            st.dataframe(table, hide_index=True)
    with st.container(key="model_plots"):
        for cm in confusions(backend.results_dir, metrics):
            title = f"Confusion matrix: {cm.task} ({cm.split})" if cm.task else f"Confusion matrix ({cm.split})"
            st.markdown(f"**{title}**")
            if cm.image is not None:
                st.image(str(cm.image), width=720)
            else:  # metrics without a plot (e.g. copied from elsewhere): the counts as a table
                st.dataframe(cm.table())
        curves = RunPaths(backend.results_dir).training_curves
        if curves.is_file():
            st.subheader("Training curves")
            st.image(str(curves), width=720)

    cv_section(backend)
    reports_section(backend)
    st.subheader("How to use this run")
    for title, language, code in backend.usage():
        st.markdown(title)
        st.code(code, language=language)
    st.subheader("Configuration (config.yaml)")
    st.code(backend.config_text(), language="yaml", height=360)


# -- the page -------------------------------------------------------------------------------------


def main(run_dir: Path | None = None) -> None:
    """The whole page for a run folder (default: the one named on the command line)."""
    st.set_page_config(page_title="AffectFusion dashboard", layout="wide")
    end_session_with_its_browser()
    resolved, error = guarded(lambda: run_dir or run_dir_from_argv(sys.argv[1:]), "reading the command line")
    backend, error = (
        (None, error) if resolved is None else guarded(lambda: get_backend(str(resolved)), "loading the run")
    )
    if backend is None:
        st.title("AffectFusion")
        st.error(f"Cannot open the run: {error}")
        return
    render(backend)


def render(backend: Backend) -> None:
    st.title(f"AffectFusion: {backend.name}")
    st.caption("Predictions run on this machine; uploads are deleted as soon as they are predicted.")
    sidebar()
    conversation = backend.context() != "none" and any(s.kind == "text" for s in backend.slots())
    tabs = st.tabs([*TABS, *(["Conversation"] if conversation else [])])
    with tabs[0]:
        analyse_page(backend)
    with tabs[1]:
        batch_page(backend)
    with tabs[2]:
        model_page(backend)
    if conversation:
        with tabs[3]:
            conversation_page(backend)


if __name__ == "__main__":
    main()
