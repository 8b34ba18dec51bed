"""Every media input bounded by what it decodes to: video frame size, containers without a duration,
every member of an EEG ``.npz``, and the summed work of one request (with the model lock shared).

All media are written here and are small on disk: a few frames of a large black H.264 clip, a
Matroska file written as a live stream (no duration in its header), a ``.npz`` whose ``sfreq``
member inflates to 50 MB from about 50 KB, and FLACs of silence.
"""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from affectfusion.data.examples.media import write_clip, write_live_mkv
from affectfusion.extract.base import ExtractionError
from affectfusion.extract.video import DecodeBudget, decode_audio, decode_budget, sample_frames
from affectfusion.serve import Predictor
from affectfusion.serve.api import create_app
from affectfusion.serve.decode import check_file, check_signal, check_video, read_signal
from affectfusion.serve.input_limits import InputLimits, InputRejected


def black_clip(path: Path, side: int, frames: int = 2, fps: int = 25) -> Path:
    """``frames`` black frames of ``side`` x ``side`` as H.264: a few KB whatever the size."""
    return write_clip(path, [np.zeros((side, side, 3), np.uint8)] * frames, fps)


def live_mkv(path: Path, seconds: int, video: bool = True) -> Path:
    """A Matroska file written as a live stream: its header states no duration."""
    return write_live_mkv(path, seconds, video=video, rate=48_000)


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=x.dtype.hasobject)
    return buf.getvalue()


def write_npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def flac(path: Path, seconds: int) -> Path:
    import soundfile as sf

    with sf.SoundFile(str(path), "w", 16_000, 1, "PCM_16", format="FLAC") as f:
        for _ in range(seconds):
            f.write(np.zeros(16_000, dtype=np.int16))
    return path


# -- video frame size -------------------------------------------------------------------------------


def test_huge_video_frames_are_refused_from_the_header(tmp_path: Path, trained_video_run: Path) -> None:
    clip = black_clip(tmp_path / "big.mp4", 4096)
    assert clip.stat().st_size < 100_000
    with pytest.raises(InputRejected, match=r"4096x4096 pixels per frame.*max_video_pixels=8294400") as e:
        check_video(clip, InputLimits())
    assert e.value.status == 413
    with TestClient(create_app(Predictor.load(trained_video_run))) as client:
        start = time.perf_counter()
        r = client.post("/predict", files={"video": ("big.mp4", clip.read_bytes(), "video/mp4")})
        assert r.status_code == 413 and "max_video_pixels" in r.json()["detail"] and "'big.mp4'" in r.json()["detail"]
        assert time.perf_counter() - start < 10  # refused from the header, nothing decoded
    check_video(clip, InputLimits(max_video_pixels=4096 * 4096))  # a setting raises the limit


def test_frames_times_pixels_is_bounded(tmp_path: Path) -> None:
    clip = black_clip(tmp_path / "c.mp4", 256, frames=50)
    with pytest.raises(InputRejected, match=r"50 frames of 256x256 \(3 megapixels\).*max_video_megapixels=2"):
        check_video(clip, InputLimits(max_video_megapixels=2))
    check_video(clip, InputLimits(max_video_megapixels=4))


def test_admitted_large_frames_are_decoded_scaled_down(tmp_path: Path) -> None:
    clip = black_clip(tmp_path / "wide.mp4", 2048, frames=3)
    frames = sample_frames(clip, fps=100)
    assert len(frames) == 3 and all(f.shape == (1280, 1280, 3) for f in frames)  # not 2048x2048 RGB
    small = sample_frames(black_clip(tmp_path / "small.mp4", 320, frames=2), fps=100)
    assert small[0].shape == (320, 320, 3)  # below MAX_SIDE: as it is


# -- containers without a duration ------------------------------------------------------------------


def test_container_without_duration_is_measured_by_its_packets(tmp_path: Path) -> None:
    import av

    clip = live_mkv(tmp_path / "live.mkv", seconds=6)
    with av.open(str(clip)) as container:
        assert container.duration is None  # the premise: nothing in the header to check
    assert clip.stat().st_size < 20_000
    with pytest.raises(InputRejected, match=r"\d\.\d s of video.*max_video_seconds=3"):
        check_video(clip, InputLimits(max_video_seconds=3))
    with pytest.raises(InputRejected, match="max_video_frames=20"):
        check_video(clip, InputLimits(max_video_frames=20))
    audio_only = live_mkv(tmp_path / "audio.mkv", seconds=6, video=False)
    with pytest.raises(InputRejected, match="max_video_seconds=3"):
        check_video(audio_only, InputLimits(max_video_seconds=3))
    check_video(clip, InputLimits(max_video_seconds=8))


def test_decoding_stops_at_the_budget_whatever_the_header(tmp_path: Path) -> None:
    clip = live_mkv(tmp_path / "live.mkv", seconds=6)
    with decode_budget(DecodeBudget(seconds=3)), pytest.raises(ExtractionError, match=r"audio track.*=3"):
        decode_audio(clip, 16_000)
    with decode_budget(DecodeBudget(seconds=3)), pytest.raises(ExtractionError, match=r"video track.*=3"):
        sample_frames(clip, fps=1)
    with decode_budget(DecodeBudget(frames=10)), pytest.raises(ExtractionError, match="max_video_frames=10"):
        sample_frames(clip, fps=1)
    with decode_budget(DecodeBudget(pixels=1000)), pytest.raises(ExtractionError, match="64x64 frame"):
        sample_frames(clip, fps=1)
    assert decode_audio(clip, 16_000).size >= 5 * 16_000  # no budget: the whole track (training data)


def test_api_refuses_a_long_container_without_duration(tmp_path: Path, trained_video_run: Path) -> None:
    clip = live_mkv(tmp_path / "live.mkv", seconds=6)
    app = create_app(Predictor.load(trained_video_run), limits=InputLimits(max_video_seconds=3))
    with TestClient(app) as client:
        r = client.post("/predict", files={"video": ("live.mkv", clip.read_bytes(), "video/x-matroska")})
    assert r.status_code == 413 and "max_video_seconds=3" in r.json()["detail"]


# -- every member of an EEG .npz --------------------------------------------------------------------

GOOD = {"data.npy": npy(np.zeros((4, 1000))), "sfreq.npy": npy(np.array(250.0))}


def test_npz_member_that_inflates_past_the_limit_is_refused(tmp_path: Path) -> None:
    bomb = npy(np.zeros(6_553_600))  # sfreq "declares" 50 MB of zeros
    path = write_npz(tmp_path / "bomb.npz", {"data.npy": GOOD["data.npy"], "sfreq.npy": bomb})
    assert path.stat().st_size < 200_000
    with pytest.raises(InputRejected, match=r"sfreq.npy.*max_feature_values") as e:
        check_file("signal", path, InputLimits())
    assert e.value.status == 413
    # A .npy header that understates its member: the zip entry inflates to more than it declares.
    lying = npy(np.array(250.0)) + bytes(1_000_000)
    path = write_npz(tmp_path / "lying.npz", {"data.npy": GOOD["data.npy"], "sfreq.npy": lying})
    with pytest.raises(InputRejected, match=r"sfreq.npy: \d+ bytes uncompressed, its .npy header declares 1 x"):
        check_signal(path, InputLimits())
    with pytest.raises(InputRejected, match="over the limit max_feature_values=1000"):
        check_signal(path, InputLimits(max_feature_values=1000))  # the zip header's size, before reading


@pytest.mark.parametrize(
    ("sfreq", "status", "phrase"),
    [
        (np.array([250.0, 500.0]), 422, "expected one number"),
        (np.array(["250"]), 422, "string values"),
        (np.array([250.0], dtype=object), 422, "object values"),
    ],
)
def test_every_npz_member_header_is_checked(tmp_path: Path, sfreq: np.ndarray, status: int, phrase: str) -> None:
    path = write_npz(tmp_path / "x.npz", {"data.npy": GOOD["data.npy"], "sfreq.npy": npy(sfreq)})
    with pytest.raises(InputRejected, match=phrase) as e:
        check_signal(path, InputLimits())
    assert e.value.status == status


def test_extra_npz_members_are_checked_and_good_files_read(tmp_path: Path) -> None:
    extra = write_npz(tmp_path / "extra.npz", {**GOOD, "notes.npy": npy(np.zeros(50_000))})
    with pytest.raises(InputRejected, match=r"notes.npy: 400128 bytes uncompressed .* max_feature_values=5000"):
        check_signal(extra, InputLimits(max_feature_values=5000))
    good = write_npz(tmp_path / "good.npz", GOOD)
    signal = read_signal(good, InputLimits())
    assert signal.data.shape == (4, 1000) and signal.sfreq == 250.0
    np.savez(tmp_path / "fortran.npz", data=np.asfortranarray(np.arange(12.0).reshape(3, 4)), sfreq=128)
    assert read_signal(tmp_path / "fortran.npz", InputLimits()).data[1, 2] == 6.0


# -- the summed work of one request, and the lock shared between requests ---------------------------


def test_batch_files_summed_duration_is_bounded(tmp_path: Path, trained_media_run: Path) -> None:
    files = [("files", (f"{i}.flac", flac(tmp_path / f"{i}.flac", 100).read_bytes(), "audio/flac")) for i in range(3)]
    limits = InputLimits(max_request_media_seconds=250)
    with TestClient(create_app(Predictor.load(trained_media_run), limits=limits)) as client:
        r = client.post("/predict/batch/files", data={"kind": "audio"}, files=files)
        assert r.status_code == 413, r.text
        assert "max_request_media_seconds=250" in r.json()["detail"]
        r = client.post("/predict/batch/files", data={"kind": "audio"}, files=files[:2])
        assert r.status_code == 200 and r.json()["failed"] == 0


def test_batch_files_release_the_model_between_items(trained_media_run: Path, media: Path) -> None:
    predictor = Predictor.load(trained_media_run)
    calls: list[list[str]] = []
    predict = predictor.predict

    def slow_predict(inputs, ids=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(ids or []))
        time.sleep(0.5)  # each item holds the model this long: the single request arrives meanwhile
        return predict(inputs, ids, *args, **kwargs)

    predictor.predict = slow_predict  # type: ignore[method-assign]
    app = create_app(predictor)
    wavs = sorted(media.glob("*.wav"))[:6]
    files = [("files", (p.name, p.read_bytes(), "audio/wav")) for p in wavs]

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
            batch = asyncio.create_task(c.post("/predict/batch/files", data={"kind": "audio"}, files=files))
            while not calls:
                await asyncio.sleep(0.02)
            single = await c.post("/predict", data={"text": "a happy day", "id": "single"})
            assert single.status_code == 200
            assert (await batch).status_code == 200

    asyncio.run(main())
    order = [i for call in calls for i in call]
    assert sorted(order) == sorted([*(p.name for p in wavs), "single"])
    assert all(len(call) == 1 for call in calls)  # one file item per turn of the lock
    assert order.index("single") < len(order) - 1, order  # the single request went in between
