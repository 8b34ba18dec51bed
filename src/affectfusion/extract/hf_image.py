"""Vision backbones from any local Hugging Face folder: CLIP, SigLIP, ViT, DINOv2 (and other AutoModel image encoders).

``hf_image``: an image file -> one embedding ``[D]`` (CLIP/SigLIP: the projected image embedding that
their text side shares; ViT/DINOv2: the pooled output, else the CLS token) or the patch sequence
``[P, D]`` of the last layer. ``hf_video``: a video file -> per-frame embeddings ``[T, D]`` at ``fps``.
No vision weights ship with the toolkit: ``model_path`` is a folder the user saved (for P3's setup,
``openai/clip-vit-base-patch32`` saved with ``save_pretrained``); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import EXTRACTORS, ExtractionError, Extractor, RawInput
from affectfusion.extract.examples import Example
from affectfusion.extract.face import load_image
from affectfusion.extract.hf_audio import folder_fingerprint, model_folder
from affectfusion.extract.text import _require
from affectfusion.extract.video import sample_frames
from affectfusion.threads import apply_threads


class _VisionOptions(Extractor.Options):
    model_path: str = Field(description="local Hugging Face image model folder (save_pretrained layout)")
    output: Literal["embedding", "patches"] = Field(
        "embedding", description="embedding = one [D] vector per image; patches = [P, D] last-layer tokens"
    )
    batch_size: int = Field(16, ge=1, description="images per forward pass")


class _VisionBackbone(Extractor):
    """Shared loading and batched encoding of RGB frames."""

    version = "1"
    packages: ClassVar[tuple[str, ...]] = ("transformers", "torch", "pillow")
    uses_gpu = True
    options: _VisionOptions

    def fingerprint(self) -> str:
        return folder_fingerprint(super().fingerprint(), model_folder(self.options.model_path, self.name))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "device": self.device}

    def setup(self) -> None:
        from affectfusion.device import resolve_device  # imports torch: only model-based extractors need it

        transformers = _require("transformers", "transformers")
        folder = model_folder(self.options.model_path, self.name)
        transformers.utils.logging.disable_progress_bar()
        try:
            self._processor = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
            model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AffectFusionError(
                f"{self.name}: cannot load a Hugging Face image model from {folder}: {first}"
            ) from None
        self._device = resolve_device(self.device or "auto", f"{self.name} device")
        apply_threads("auto" if self.threads is None else self.threads, sum(p.numel() for p in model.parameters()))
        self._model = model.eval().to(self._device)
        # CLIP / SigLIP hold a text tower too: the image side is get_image_features / vision_model.
        self._dual = hasattr(model, "get_image_features") and hasattr(model, "vision_model")

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, D]`` embeddings or ``[N, P, D]`` patch tokens of RGB ``uint8`` frames, in batches."""
        import torch  # loaded with the model already

        out = []
        for start in range(0, len(images), self.options.batch_size):
            pixels = self._processor(images=list(images[start : start + self.options.batch_size]), return_tensors="pt")
            pixels = pixels["pixel_values"].to(self._device)
            with torch.no_grad():
                out.append(self._forward(pixels).float().cpu().numpy())
        return np.concatenate(out)

    def _forward(self, pixels: Any) -> Any:
        if self.options.output == "patches":
            tower = self._model.vision_model if self._dual else self._model
            return tower(pixel_values=pixels).last_hidden_state
        if self._dual:
            features = self._model.get_image_features(pixel_values=pixels)
            return getattr(features, "pooler_output", features)  # a tensor, or an output object in newer versions
        result = self._model(pixel_values=pixels)
        pooled = getattr(result, "pooler_output", None)
        return pooled if pooled is not None else result.last_hidden_state[:, 0]


@EXTRACTORS.register("hf_image")
class HFImageExtractor(_VisionBackbone):
    """Image embedding [D] or patch tokens [P, D] from a local CLIP / SigLIP / ViT / DINOv2 folder."""

    example = Example("face_image", dim=32, model=("vision", "vit"))

    kind = "image"

    class Options(_VisionOptions):
        pass

    options: Options

    def extract(self, item: RawInput) -> np.ndarray:
        self.ensure_ready()
        return self.encode([load_image(item)])[0]

    def extract_batch(self, items: Sequence[RawInput]) -> list[np.ndarray | ExtractionError]:
        """Readable images are encoded together; an unreadable one gets its error."""
        self.ensure_ready()
        out: dict[int, np.ndarray | ExtractionError] = {}
        images: dict[int, np.ndarray] = {}
        for i, item in enumerate(items):
            try:
                images[i] = load_image(item)
            except ExtractionError as e:
                out[i] = e
        if images:
            try:
                for i, array in zip(images, self.encode(list(images.values())), strict=True):
                    out[i] = array
            except Exception as e:  # a model failure must not stop the other batches of the store
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                out.update({i: ExtractionError(f"{self.name}: {text}") for i in images})
        return [out[i] for i in range(len(items))]


@EXTRACTORS.register("hf_video")
class HFVideoExtractor(_VisionBackbone):
    """Per-frame image embeddings [T, D] of a video file, frames sampled at `fps`."""

    example = Example("face_video", dim=32, model=("vision", "vit"))

    kind = "video"
    version = "2"  # 2: frames converted at most MAX_SIDE pixels long (extract/video.py)
    packages: ClassVar[tuple[str, ...]] = (*_VisionBackbone.packages, "av")

    class Options(_VisionOptions):
        output: Literal["embedding"] = Field("embedding", description="one embedding per frame")
        fps: float = Field(2.0, gt=0, description="frames sampled per second of video")
        max_frames: int | None = Field(64, ge=1, description="keep at most this many frames")

    options: Options

    def extract(self, item: RawInput) -> np.ndarray:
        self.ensure_ready()
        frames = sample_frames(item, self.options.fps, self.options.max_frames)
        return self.encode(frames)
