"""Synthetic media files for example datasets and extractor examples: tones as speech, a drawn face that
face detectors and MediaPipe's face mesh find, short H.264 clips of it with an AAC tone, and a small raw
multimodal table (``media_table`` layout) that trains in seconds. Nothing is downloaded.

Media libraries (soundfile, Pillow, OpenCV, PyAV) are imported inside the writers: adapter modules
import this module to declare their examples, and loading a dataset must not pay for them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from affectfusion.data.examples import ExampleSpec, write_csv

CLASSES = ["happy", "sad", "angry"]
WORDS = {
    "happy": ["wonderful", "great", "love", "joy", "delighted"],
    "sad": ["terrible", "lonely", "cry", "miserable", "loss"],
    "angry": ["furious", "hate", "outraged", "annoyed", "rage"],
}
SPLITS = {"train": 36, "dev": 12, "test": 12}
SR = 16000
VIDEO_FPS, VIDEO_AUDIO_RATE = 10, 44100


def write_wav(path: Path, label: int, rng: np.random.Generator, seconds: float = 0.5) -> Path:
    """A tone whose pitch depends on the class, plus noise."""
    import soundfile as sf  # media library: only when writing a file

    t = np.arange(int(seconds * SR)) / SR
    f0 = (220.0, 440.0, 880.0)[label] * rng.uniform(0.95, 1.05)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.4 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32), SR)
    return path


def write_image(path: Path, label: int, rng: np.random.Generator, size: int = 64) -> Path:
    """A grey image whose brightness pattern depends on the class."""
    from PIL import Image  # media library: only when writing a file

    base = np.full((size, size), (60, 130, 200)[label], dtype=np.float64)
    img = np.clip(base + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).convert("RGB").save(path)
    return path


def draw_face(size: int = 256) -> np.ndarray:
    """An RGB ``[size, size, 3]`` drawing of a frontal face (skin oval, eyes, brows, nose, mouth) that
    MediaPipe's face detector and face mesh find: a real face input with no photo to ship."""
    import cv2  # media library: only when drawing

    img = np.full((size, size, 3), 200, np.uint8)
    c, s = size // 2, size / 256
    cv2.ellipse(img, (c, c), (round(77 * s), round(102 * s)), 0, 0, 360, (224, 172, 140), -1)
    for side in (-1, 1):
        ex, ey = c + side * round(31 * s), c - round(20 * s)
        cv2.ellipse(img, (ex, ey), (round(15 * s), round(8 * s)), 0, 0, 360, (255, 255, 255), -1)
        cv2.circle(img, (ex, ey), round(6 * s), (60, 40, 30), -1)
        brow = (ex - round(18 * s), ey - round(18 * s)), (ex + round(18 * s), ey - round(20 * s))
        cv2.line(img, *brow, (80, 50, 30), max(1, round(4 * s)))
    cv2.line(img, (c, c - round(10 * s)), (c - round(8 * s), c + round(20 * s)), (170, 120, 100), max(1, round(3 * s)))
    cv2.ellipse(img, (c, c + round(46 * s)), (round(23 * s), round(8 * s)), 0, 0, 360, (150, 60, 60), -1)
    return cv2.GaussianBlur(img, (5, 5), 0)


def write_face(path: Path, size: int = 256) -> Path:
    """:func:`draw_face` saved as an image file."""
    from PIL import Image  # media library: only when writing a file

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_face(size)).save(path)
    return path


def write_clip(path: Path, frames: list[np.ndarray], fps: float, tone: np.ndarray | None = None) -> Path:
    """RGB ``frames`` as an H.264 clip at ``fps`` (sizes cut to even numbers, as yuv420p needs), with ``tone``
    (float mono at :data:`VIDEO_AUDIO_RATE`) as AAC when given. One encoder thread: x264's threads make the
    bytes, and so cache keys and decoded pixels, differ from one writing to the next."""
    import av  # media library: only when writing a file

    h, w = (d - d % 2 for d in frames[0].shape[:2])
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=max(1, round(fps)), options={"threads": "1"})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = out.add_stream("aac", rate=VIDEO_AUDIO_RATE, layout="mono") if tone is not None else None
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None and tone is not None:
            for start in range(0, tone.size, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[start : start + 1024][None, :], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = VIDEO_AUDIO_RATE, start, Fraction(1, VIDEO_AUDIO_RATE)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def write_live_mkv(path: Path, seconds: int, video: bool = False, rate: int = VIDEO_AUDIO_RATE) -> Path:
    """Silent mono AAC (and, with ``video``, 64x64 black H.264 frames at 5 fps) written as a live Matroska
    stream: its header states no duration, so only counting the packets bounds it (~1 KB a second)."""
    import av  # media library: only when writing a file

    with av.open(str(path), "w", format="matroska", options={"live": "1"}) as out:
        sound = out.add_stream("aac", rate=rate, layout="mono")
        if video:
            stream = out.add_stream("libx264", rate=5, options={"threads": "1"})
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            for i in range(seconds * 5):
                frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        for start in range(0, rate * seconds, 1024):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


def write_video(path: Path, image: np.ndarray, seconds: float = 1.0, audio: bool = True, fps: int = VIDEO_FPS) -> Path:
    """H.264 frames of ``image`` drifting a few pixels at ``fps`` and (optionally) a 440 Hz mono AAC tone."""
    frames = []
    for i in range(round(seconds * fps)):
        shift = round(4 * np.sin(i / 5))
        frames.append(np.roll(image, (shift, -shift), axis=(0, 1)))
    t = np.arange(round(seconds * VIDEO_AUDIO_RATE)) / VIDEO_AUDIO_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32) if audio else None
    return write_clip(path, frames, fps, tone)


def make_media_table(root: Path, seed: int = 0, splits: dict[str, int] | None = None) -> Path:
    """``<root>/{train,dev,test}.csv`` + ``media/``: every row has text; most have audio and image."""
    import pandas as pd  # only when writing the table: extractors import this module for their examples

    rng = np.random.default_rng(seed)
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    for split, n in (splits or SPLITS).items():
        rows = []
        for i in range(n):
            label = i % len(CLASSES)
            sid = f"{split}{i:03d}"
            words = rng.choice(WORDS[CLASSES[label]], size=3)
            row: dict[str, Any] = {"id": sid, "text": f"I feel {' and '.join(words)} today", "emotion": CLASSES[label]}
            row["audio"] = row["image"] = ""
            if i % 4 != 3:
                write_wav(media / f"{sid}.wav", label, rng)
                row["audio"] = f"media/{sid}.wav"
            if i % 3 != 2:
                write_image(media / f"{sid}.png", label, rng)
                row["image"] = f"media/{sid}.png"
            rows.append(row)
        pd.DataFrame(rows).to_csv(root / f"{split}.csv", index=False)
    return root


def media_table(root: Path) -> ExampleSpec:
    """``media_table``: four rows of text, wav and image, some media cells empty."""
    make_media_table(root, splits={"dev": 4})
    options = {"inputs": {"text": "text", "audio": "audio", "image": "image"}, "targets": {"emotion": "emotion"}}
    return ExampleSpec("dev", ("emotion",), options)


def _speech_manifest(root: Path, group: str, targets: dict[str, list[Any]]) -> None:
    """``<root>/labels.csv`` (path, split, ``group`` column, target columns) and its wavs under ``train/``."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(len(next(iter(targets.values())))):
        rel = f"train/{i:02d}.wav"
        write_wav(root / rel, i % 3, rng, seconds=0.3)
        rows.append({"path": rel, "split": "train", group: f"{i % 2 + 1:02d}", **{c: v[i] for c, v in targets.items()}})
    write_csv(root / "labels.csv", rows)


def ravdess(root: Path) -> ExampleSpec:
    """RAVDESS: ``labels.csv`` with actor, emotion and intensity columns."""
    _speech_manifest(root, "actor", {"emotion": ["calm", "angry", "sad"], "intensity": ["normal", "strong", ""]})
    return ExampleSpec("train", ("emotion", "intensity"))


def emodb(root: Path) -> ExampleSpec:
    """EmoDB: ``labels.csv`` with speaker and emotion columns."""
    _speech_manifest(root, "speaker", {"emotion": ["anger", "boredom", "neutral"]})
    return ExampleSpec("train", ("emotion",))


def pyaudioanalysis_va(root: Path) -> ExampleSpec:
    """pyAudioAnalysis speechEmotion: ``labels.csv`` with group, valence and arousal in [-1, 1]."""
    _speech_manifest(root, "group", {"valence": [-0.8, 0.1, 0.6], "arousal": [0.5, -0.2, 0.0]})
    return ExampleSpec("train", ("valence", "arousal"))


def audio_folder(root: Path) -> ExampleSpec:
    """Any audio folder: a per-split manifest with custom file, label and speaker columns."""
    rng = np.random.default_rng(1)
    rows = [{"file": f"clips/{k}.wav", "mood": mood, "speaker": f"s{k}"} for k, mood in enumerate(["calm", "tense"])]
    for k, row in enumerate(rows):
        write_wav(root / row["file"], k, rng, seconds=0.3)
    write_csv(root / "test.csv", rows)
    options = {"manifest": "{split}.csv", "file_column": "file", "group_column": "speaker", "targets": {"mood": "mood"}}
    return ExampleSpec("test", ("mood",), options)


def image_folder(root: Path) -> ExampleSpec:
    """Face images in ``<root>/<split>/<class>/`` (no manifest: folders are scanned)."""
    rng = np.random.default_rng(0)
    for i, label in enumerate(CLASSES):
        write_image(root / "train" / label / f"{i}.png", i, rng, size=48)
    write_face(root / "train" / "happy" / "face.jpg", size=96)
    return ExampleSpec("train", ("emotion",))


def video_folder(root: Path) -> ExampleSpec:
    """Short clips listed by ``labels.csv`` with a group column."""
    face = draw_face(64)
    rows = []
    for i, label in enumerate(["angry", "calm"]):
        rel = f"dev/{label}/clip{i}.mp4"
        write_video(root / rel, np.roll(face, 3 * i, axis=1), seconds=0.5)
        rows.append({"path": rel, "split": "dev", "label": label, "group": f"s0{i}"})
    write_csv(root / "labels.csv", rows)
    return ExampleSpec("dev", ("emotion",))
