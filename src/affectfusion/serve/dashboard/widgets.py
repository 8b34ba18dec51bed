"""The dashboard's parts beyond one upload: webcam / microphone capture, audio playback, banners, the
per-modality view, example inputs, the video timeline, the run's reports and the Conversation tab.

Drawing only: what they compute is in ``extras.py`` and ``timeline.py`` (Streamlit-free, tested directly).
"""

from __future__ import annotations

import mimetypes
import tempfile
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from affectfusion.rundir import TunePaths
from affectfusion.serve.dashboard.actions import guarded, run_analysis, save_upload, strip_folder
from affectfusion.serve.dashboard.backends import Analysis, Backend, InputSlot
from affectfusion.serve.dashboard.extras import (
    LOW_CONFIDENCE,
    MAX_TURNS,
    banners,
    cv_of,
    cv_table,
    example_kinds,
    per_modality_table,
    pick_example,
    run_conversation,
    run_reports,
)
from affectfusion.serve.dashboard.timeline import video_timeline

CAPTURE = {  # slot kind -> (widget key prefix, label); an uploaded file is used in preference
    "image": ("camera", "Or take a photo with the webcam (used when no file is uploaded)"),
    "audio": ("mic", "Or record with the microphone (used when no file is uploaded)"),
}


EXAMPLE_TURNS = [
    ("A", "I can't believe you lost the tickets again."),
    ("B", "I'm so sorry, I feel terrible about it."),
    ("A", "Well, they found them at the desk, so we can go after all!"),
]


def threshold() -> float:
    """The low-confidence threshold, set in the sidebar (default :data:`LOW_CONFIDENCE`)."""
    return float(st.session_state.get("low_confidence", LOW_CONFIDENCE))


def sidebar() -> None:
    with st.sidebar:
        st.slider("Warn below this top-class probability", 0.0, 1.0, LOW_CONFIDENCE, 0.05, key="low_confidence")


def input_widget(slot: InputSlot) -> Any:
    """A slot's widget(s) inside the Analyse form: text area, or file upload plus webcam / microphone capture.

    A capture is used when no file is uploaded; both go through the same checks and decoding.
    """
    if slot.kind == "text":
        return st.text_area(slot.label, key=f"in_{slot.key}", height=100)
    if slot.kind not in CAPTURE:
        return st.file_uploader(slot.label, key=f"in_{slot.key}")
    prefix, label = CAPTURE[slot.kind]
    upload_col, capture_col = st.columns(2)
    upload = upload_col.file_uploader(slot.label, key=f"in_{slot.key}")
    with capture_col:
        if slot.kind == "image":
            captured = st.camera_input(label, key=f"{prefix}_{slot.key}")
        else:
            captured = st.audio_input(label, key=f"{prefix}_{slot.key}")
    return upload if upload is not None else captured


def analyse(backend: Backend, values: dict[str, Any]) -> None:
    """Predict the form's values; keep the audio clips for playback and a video's timeline."""
    slots = {s.key: s for s in backend.slots()}
    st.session_state["analysis"] = run_analysis(backend, values)
    given = {k: v for k, v in values.items() if v is not None and not isinstance(v, str)}
    st.session_state["analysis_audio"] = [
        (slots[k].label, v.getvalue(), v.name) for k, v in given.items() if slots[k].kind == "audio"
    ]
    videos = [(slots[k], v) for k, v in given.items() if slots[k].kind == "video"]
    st.session_state["timeline"] = timeline_of(backend, *videos[0]) if videos else None


def timeline_of(backend: Backend, slot: InputSlot, upload: Any) -> tuple[pd.DataFrame | None, str | None]:
    with tempfile.TemporaryDirectory(prefix="affectfusion-dashboard-") as tmp:
        path = save_upload(upload, Path(tmp), Path(upload.name).name)
        table, error = guarded(lambda: video_timeline(backend, slot, path), "video timeline")
        return table, strip_folder(error, Path(tmp)) if error else None


def examples_row(backend: Backend) -> None:
    """A select box of example inputs (the library's synthetic ones) and a button that analyses them."""
    slots = backend.slots()
    keys = example_kinds(slots)
    if not keys:
        return
    labels = {s.key: s.label.split(" →")[0] for s in slots}
    choices = ["all inputs", *keys] if len(keys) > 1 else keys
    pick_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    pick_col.selectbox("Example input to try", choices, format_func=lambda c: labels.get(c, c), key="example_pick")
    button_col.button("Try an example", key="example_run", on_click=use_example, args=(backend, keys))
    if st.session_state.get("example_note"):
        st.caption(st.session_state["example_note"])


def use_example(backend: Backend, keys: list[str]) -> None:
    """Button callback (runs before the page is drawn, so it may fill the text box): analyse the example.

    The choice is read from the session, not bound as an argument: arguments are fixed when the button
    is drawn, so a choice changed in the same interaction would be missed.
    """
    pick = st.session_state.get("example_pick", "all inputs")
    index = st.session_state.get("example_index", 0)  # each press: the next sample of the run's data
    st.session_state["example_index"] = index + 1
    chosen = keys if pick == "all inputs" else [pick]
    example, error = guarded(lambda: pick_example(backend.config(), backend.slots(), chosen, index), "example")
    if example is None:
        st.session_state["analysis"] = Analysis(error=error)
        return
    st.session_state["example_note"] = example.note
    values = example.values
    if isinstance(values.get("text"), str):
        st.session_state["in_text"] = values["text"]
    analyse(backend, values)


def render_banners(a: Analysis) -> None:
    """No face found (error) and low confidence (warning), above the result."""
    with st.container(key="banners"):
        for level, message in banners(a, threshold()):
            (st.error if level == "error" else st.warning)(message)


def render_extras(a: Analysis, slots: list[InputSlot]) -> None:
    """Under the headline: playback of the audio given, the per-modality view and a video's timeline."""
    for label, data, name in st.session_state.get("analysis_audio") or []:
        with st.container(key="playback"):
            st.caption(f"{label}: the clip that was analysed")
            st.audio(data, format=mimetypes.guess_type(name)[0] or "audio/wav")
    table = per_modality_table(a, slots)
    if not table.empty:
        with st.container(key="per_modality"):
            st.subheader("Each input alone")
            st.caption(
                "The prediction from each input on its own (the others treated as missing) next to the fused "
                "answer; attribution: the input's Shapley value for the fused prediction."
            )
            st.table(table.set_index("source"))  # a few rows: plain HTML, readable without scrolling
    timeline = st.session_state.get("timeline")
    if timeline is not None:
        render_timeline(*timeline)


def render_timeline(table: pd.DataFrame | None, error: str | None) -> None:
    with st.container(key="timeline"):
        st.subheader("Video timeline")
        if table is None:
            st.error(f"No timeline for this video: {error}")
            return
        for task, rows in table.groupby("task", sort=False):
            chart = (
                alt.Chart(rows)
                .mark_line(point=True)
                .encode(
                    x=alt.X("start_s:Q", title="segment start (s)"),
                    y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1])),
                    color="class:N",
                )
                .properties(title=f"{task}: class probabilities over time")
            )
            st.altair_chart(chart, width=720, height=260)


def reports_section(backend: Backend) -> None:
    """The run's analysis reports: a download button each, HTML ones also shown inline on request."""
    found = run_reports(backend.results_dir)
    if not found:
        return
    st.subheader("Reports")
    with st.container(key="reports"):
        for k, (title, path) in enumerate(found):
            st.download_button(
                f"Download {title}", path.read_bytes(), file_name=path.name, key=f"report_{k}", on_click="ignore"
            )
            if path.suffix == ".html":
                with st.expander(f"Show {title}"):
                    st.iframe(path, height=600)
            elif path == TunePaths(path.parent).report:  # the search, its best trial and seeds; plots as images
                with st.expander(f"Show {title}"):
                    text = path.read_text(encoding="utf-8")
                    st.markdown("\n".join(line for line in text.splitlines() if not line.startswith("![")))
                    tune = TunePaths(path.parent)
                    for plot in (tune.history_plot, tune.importance_plot):
                        if plot.is_file():
                            st.image(str(plot), width=720)


def conversation_page(backend: Backend) -> None:
    """Turns (speaker + text) of one conversation -> each turn's prediction in its context."""
    st.markdown(
        f"This run reads each utterance with the conversation around it (context stage `{backend.context()}`). "
        f"Enter up to {MAX_TURNS} turns in order; empty rows are skipped."
    )
    start = pd.DataFrame(EXAMPLE_TURNS, columns=["speaker", "text"])  # an example to edit
    turns = st.data_editor(
        start,
        num_rows="dynamic",
        key="conversation_turns",
        column_config={"speaker": st.column_config.TextColumn(), "text": st.column_config.TextColumn(width="large")},
    )
    if st.button("Predict conversation", key="conversation_run", type="primary"):
        table, error = guarded(lambda: run_conversation(backend, turns), "conversation")
        st.session_state["conversation"] = (table, error)
    result = st.session_state.get("conversation")
    if result is not None:
        table, error = result
        if error:
            st.error(f"Could not predict the conversation: {error}")
        else:
            with st.container(key="conversation_result"):
                st.table(table.set_index("turn"))  # at most MAX_TURNS rows: plain HTML, all text visible


def cv_section(backend: Backend) -> None:
    """For a fold of a cross-validation: the protocol, every metric over folds and the pooled confusion."""
    summary = cv_of(backend.results_dir)
    if summary is None:
        return
    p = summary["protocol"]
    st.subheader("Cross-validation")
    st.markdown(
        f"This run is one of {p['n_folds']} folds: **{p['name']}** over {p['n_samples']} samples of "
        f"{', '.join(p['splits'])}. Validation: {p['validation']}. Folder: `{Path(backend.results_dir).parent}`."
    )
    with st.container(key="cv"):
        st.dataframe(cv_table(summary), hide_index=True)
        for task, info in summary.get("pooled", {}).items():
            if info.get("confusion_matrix"):
                st.markdown(f"**Pooled confusion matrix: {task}** (every sample tested once)")
                classes = info["classes"]
                st.dataframe(pd.DataFrame(info["confusion_matrix"], index=classes, columns=classes))
