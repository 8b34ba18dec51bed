"""Speech backbones from any local Hugging Face folder: wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper's encoder.

``hf_audio`` turns a speech file into frame sequences ``[T, D]`` from one layer, or from every layer
(``layers: all``) for a learnable softmax layer weighting in the encoder (``layer_weighted``), as SUPERB
and EmoBox do. Every layer is kept flat as ``[T, L * D]`` (layer-major), so the feature store, the
collator and input normalisation treat it like any other sequence. Clips are batched with attention
masks (``batch_size``), long recordings are cut into ``chunk_seconds`` windows whose frames are
concatenated, and the model runs on any torch device. Whisper's encoder only takes its full 30 s
window: its input is padded as Whisper was trained, and only the frames covering real audio are kept.

``hf_waveform`` hands the preprocessed waveform itself (``[T, 1]`` samples) to the ``hf_audio_lora``
encoder, which fine-tunes such a backbone with LoRA. Models are never downloaded: ``model_path`` is a
local folder (``save_pretrained`` layout with its feature extractor's ``preprocessor_config.json``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from affectfusion.errors import AffectFusionError
from affectfusion.extract.audio import AudioExtractor, _require
from affectfusion.extract.base import EXTRACTORS, ExtractionError, RawInput
from affectfusion.extract.examples import Example
from affectfusion.threads import apply_threads

UNPADDED = ("data2vec-audio",)  # model types encoded one window at a time (see setup)
MIN_SAMPLES = 400  # 25 ms at 16 kHz: the shortest window that yields an encoder frame


def model_folder(model_path: str, who: str) -> Path:
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise AffectFusionError(
            f"{who} model_path {model_path!r} is not a folder; give a local Hugging Face model folder "
            "(written by save_pretrained, with preprocessor_config.json): models are never downloaded from a hub"
        )
    return path


def folder_fingerprint(base: str, folder: Path) -> str:
    """``base`` plus the size and modification time of the folder's files: re-saved weights make new features."""
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    key = json.dumps({"base": base, "folder": str(folder.resolve()), "files": files})
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def load_audio_backbone(folder: Path, who: str) -> tuple[Any, Any]:
    """(feature extractor, speech encoder) from a local folder; for Whisper, its encoder alone."""
    transformers = _require("transformers", "transformers")
    logging = transformers.utils.logging
    logging.disable_progress_bar()  # a per-file bar for local weights breaks into extraction's own bar
    try:
        processor = transformers.AutoFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AffectFusionError(f"{who}: cannot load a Hugging Face speech model from {folder}: {first}") from None
    if model.config.model_type == "whisper":
        model = model.get_encoder()
    if not hasattr(model, "_get_feat_extract_output_lengths") and model.config.model_type != "whisper":
        raise AffectFusionError(
            f"{who}: {folder} holds a {model.config.model_type!r} model; expected a speech encoder "
            "(wav2vec2, HuBERT, WavLM, data2vec-audio or Whisper)"
        )
    return processor, model.eval()


def frame_counts(model: Any, samples: Sequence[int]) -> list[int]:
    """Encoder frames that cover each input of ``samples`` audio samples (Whisper: 2 per 320 samples)."""
    if model.config.model_type == "whisper":
        return [-(-n // 320) for n in samples]
    import torch  # the model is a torch module; torch is loaded with it

    lengths = model._get_feat_extract_output_lengths(torch.tensor(list(samples)))
    return [int(n) for n in lengths]


@EXTRACTORS.register("hf_audio")
class HFAudioExtractor(AudioExtractor):
    """Frame sequences [T, D] (one layer) or [T, L*D] (all layers) from a local Hugging Face speech model."""

    example = Example("speech_wav", dim=32, model=("speech", "wav2vec2"))

    version = "1"
    packages: ClassVar[tuple[str, ...]] = (*AudioExtractor.packages, "transformers", "torch")
    uses_gpu = True

    class Options(AudioExtractor.Options):
        model_path: str = Field(description="local Hugging Face speech model folder (save_pretrained layout)")
        layers: Literal["last", "all"] | int = Field(
            "last",
            description="last = the final layer [T, D]; all = every hidden state (the CNN/embedding output and "
            "each transformer layer) as [T, L*D] for layer_weighted; a number = that hidden state",
        )
        output: Literal["frames", "mean"] = Field("frames", description="frames = [T, ...]; mean = one vector")
        stride: int = Field(1, ge=1, description="average every `stride` consecutive frames")
        chunk_seconds: float = Field(
            20.0, gt=0, description="longer audio is encoded in windows of this length (Whisper: its own 30 s)"
        )
        batch_size: int = Field(8, ge=1, description="windows per forward pass (padded, with attention masks)")

    options: Options

    def fingerprint(self) -> str:
        return folder_fingerprint(super().fingerprint(), model_folder(self.options.model_path, self.name))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "device": self.device}

    def setup(self) -> None:
        super().setup()
        from affectfusion.device import resolve_device  # imports torch: only model-based extractors need it

        folder = model_folder(self.options.model_path, self.name)
        self._processor, model = load_audio_backbone(folder, self.name)
        rate = int(getattr(self._processor, "sampling_rate", 16000))
        if rate != self.options.sample_rate:
            raise AffectFusionError(
                f"{self.name}: {folder} expects {rate} Hz audio; set the option sample_rate: {rate}"
            )
        self._whisper = model.config.model_type == "whisper"
        # Group-norm feature encoders (wav2vec2-base) normalise over time, padding included: they were
        # trained without masks, so their windows are encoded one at a time instead of padded together.
        # So is data2vec-audio: its padded frames were measured to differ from unpadded ones despite the mask.
        self._one_at_a_time = (
            getattr(model.config, "feat_extract_norm", "layer") == "group" or model.config.model_type in UNPADDED
        )
        self._device = resolve_device(self.device or "auto", f"{self.name} device")
        apply_threads("auto" if self.threads is None else self.threads, sum(p.numel() for p in model.parameters()))
        self._model = model.to(self._device)
        n_hidden = model.config.num_hidden_layers + 1
        layer = self.options.layers
        if isinstance(layer, int) and not -n_hidden <= layer < n_hidden:
            raise AffectFusionError(
                f"{self.name}: layers {layer} is out of range; {folder} has {n_hidden} hidden states"
            )

    def features(self, x: np.ndarray) -> np.ndarray:
        """One preprocessed signal (its windows in one batch); ``extract_batch`` batches across files too."""
        window = self._window_samples()
        cuts = [x[s : s + window] for s in range(0, x.size, window)]
        cuts = [w for w in cuts if w.size >= MIN_SAMPLES]
        if not cuts:
            return np.empty((0, 0), dtype=np.float32)  # reported as too short by extract()
        if self._one_at_a_time:
            return self._finish([self._encode([w])[0] for w in cuts])
        return self._finish(self._encode(cuts))

    def extract_batch(self, items: Sequence[RawInput]) -> list[np.ndarray | ExtractionError]:
        """Every window of every item in padded batches; an unreadable item gets its error, the rest go on."""
        self.ensure_ready()
        out: dict[int, np.ndarray | ExtractionError] = {}
        windows: list[tuple[int, int, np.ndarray]] = []  # (item, window number, samples)
        window = self._window_samples()
        for i, item in enumerate(items):
            try:
                x = self.load(item)
            except ExtractionError as e:
                out[i] = e
                continue
            if x.size < MIN_SAMPLES:
                out[i] = ExtractionError(f"{item}: audio too short for {self.name} ({x.size} samples)")
                continue
            cuts = [x[s : s + window] for s in range(0, x.size, window)]
            windows += [(i, n, w) for n, w in enumerate(cuts) if w.size >= MIN_SAMPLES]
        frames: dict[int, dict[int, np.ndarray]] = {}
        size = 1 if self._one_at_a_time else self.options.batch_size
        windows.sort(key=lambda w: w[2].size)  # similar lengths in a batch: less padding
        for start in range(0, len(windows), size):
            chunk = windows[start : start + size]
            try:
                encoded: list[np.ndarray | ExtractionError] = list(self._encode([w for _, _, w in chunk]))
            except Exception as e:  # a model failure on one batch must not stop the others
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                encoded = [ExtractionError(f"{self.name}: {type(e).__name__}: {text}")] * len(chunk)
            for (i, n, _), seq in zip(chunk, encoded, strict=True):
                if isinstance(seq, ExtractionError):
                    out[i] = seq
                else:
                    frames.setdefault(i, {})[n] = seq
        for i, parts in frames.items():
            if i not in out:
                out[i] = self._finish([parts[n] for n in sorted(parts)])
        return [out[i] for i in range(len(items))]

    def _window_samples(self) -> int:
        if self._whisper:
            return int(self._processor.n_samples)  # Whisper's fixed window (30 s for real models)
        return round(self.options.chunk_seconds * self.options.sample_rate)

    def _finish(self, parts: list[np.ndarray]) -> np.ndarray:
        """Windows' frames joined in time order, strided, pooled if asked."""
        seq = np.concatenate(parts, axis=0)
        s = self.options.stride
        if s > 1 and seq.shape[0] >= s:
            seq = seq[: seq.shape[0] // s * s].reshape(-1, s, seq.shape[1]).mean(axis=1)
        return seq.mean(axis=0) if self.options.output == "mean" else seq

    def _encode(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Hidden states of a padded batch, cut to each window's real frames: ``[T_i, D]`` or ``[T_i, L*D]``."""
        import torch  # loaded with the model already

        kwargs: dict[str, Any] = {"sampling_rate": self.options.sample_rate, "return_tensors": "pt"}
        if self._whisper:
            inputs = self._processor(batch, padding="max_length", **kwargs)
            inputs = {"input_features": inputs["input_features"]}
        else:
            inputs = dict(self._processor(batch, padding=True, return_attention_mask=True, **kwargs))
            if self._one_at_a_time:
                inputs.pop("attention_mask", None)  # one unpadded window: nothing to mask
        inputs = {k: v.to(self._device) for k, v in inputs.items()}
        with torch.no_grad():
            hidden = self._model(**inputs, output_hidden_states=True).hidden_states
        layer = self.options.layers
        # all: [B, T, L*D], layer-major; otherwise one hidden state [B, T, D]
        h = torch.cat(list(hidden), dim=-1) if layer == "all" else hidden[-1 if layer == "last" else layer]
        counts = frame_counts(self._model, [w.size for w in batch])
        return [h[b, : counts[b]].float().cpu().numpy() for b in range(len(batch))]


@EXTRACTORS.register("hf_waveform")
class WaveformExtractor(AudioExtractor):
    """The preprocessed waveform itself as [T, 1] samples, for the hf_audio_lora encoder (which reads audio)."""

    example = Example("speech_wav", dim=1)

    version = "1"

    class Options(AudioExtractor.Options):
        max_seconds: float | None = Field(
            10.0, gt=0, description="keep at most this many seconds: a fine-tuned backbone sees every sample"
        )
        normalize: bool = Field(
            True, description="zero mean, unit variance per clip (what wav2vec2-style feature extractors do)"
        )

    options: Options

    def features(self, x: np.ndarray) -> np.ndarray:
        if self.options.normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        return x.astype(np.float32)[:, None]
