"""A video's timeline: class probabilities over time, from predicting short segments of its frames.

The video is checked against the run's limits (serve/input_limits.py, from its header) before anything is
decoded; at most :data:`MAX_SEGMENTS` segments are cut, each written as a short silent clip and predicted
through the run's own video input, so every point is what the model says about that stretch of frames.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from affectfusion.data.examples.media import write_clip
from affectfusion.errors import AffectFusionError
from affectfusion.serve.dashboard.actions import strip_folder
from affectfusion.serve.dashboard.backends import Backend, InputSlot
from affectfusion.serve.decode import check_video

MAX_SEGMENTS = 12  # points on the timeline: bounded work whatever the video's length
FRAMES_PER_SEGMENT = 2
MIN_SEGMENT_SECONDS = 0.5


def video_seconds(path: Path) -> float:
    """The video stream's duration from the container header (no decoding)."""
    import av  # PyAV comes with the video extractors, which are optional

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise AffectFusionError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return float(container.duration or 0) / av.time_base
    except av.error.FFmpegError as e:
        raise AffectFusionError(f"{path.name}: not a readable video ({e.strerror or e})") from None


def video_timeline(backend: Backend, slot: InputSlot, path: Path) -> pd.DataFrame:
    """Long table (task, start_s, class, probability) for up to :data:`MAX_SEGMENTS` segments of the video;
    segments the model cannot read (no face in them, say) are left out. Raises for an unusable video."""
    from affectfusion.extract.video import sample_frames  # PyAV: only for runs that take video

    check_video(path, backend.limits, path.name)
    seconds = video_seconds(path)
    segment = max(MIN_SEGMENT_SECONDS, seconds / MAX_SEGMENTS)
    frames = sample_frames(path, FRAMES_PER_SEGMENT / segment, FRAMES_PER_SEGMENT * MAX_SEGMENTS)
    chunks = [frames[k : k + FRAMES_PER_SEGMENT] for k in range(0, len(frames), FRAMES_PER_SEGMENT)]
    with tempfile.TemporaryDirectory(prefix="affectfusion-timeline-") as tmp:
        clips = [
            write_clip(Path(tmp) / f"segment{k:02d}.mp4", c, FRAMES_PER_SEGMENT / segment) for k, c in enumerate(chunks)
        ]
        table = backend.predict_files(slot, clips, [f"{k * segment:.2f}" for k in range(len(clips))])
        table["error"] = [strip_folder(str(e), Path(tmp)) for e in table["error"]]
    rows = []
    for _, r in table[table["error"] == ""].iterrows():
        for col, value in r.items():
            task, sep, cls = str(col).partition("_prob_")
            if sep:
                rows.append({"task": task, "start_s": float(r["id"]), "class": cls, "probability": float(value)})
    if not rows:
        errors = sorted(set(table["error"]))
        raise AffectFusionError(f"{path.name}: no segment could be predicted ({'; '.join(errors)[:300]})")
    return pd.DataFrame(rows)
