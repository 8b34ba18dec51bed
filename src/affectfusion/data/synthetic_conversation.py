"""Synthetic conversations whose labels only context can recover, to test context stages.

Each utterance carries a cue (one of K classes, as a noisy prototype in ``text`` and a weaker one
in ``audio``); its label is the cue of the utterance ``lag`` turns earlier in the same
conversation. An utterance's own features say nothing about its label, so a model without context
sits at chance while any context stage that reads earlier turns can reach near-perfect accuracy.
The first ``lag`` utterances of a conversation are unlabelled.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from affectfusion.data.examples import conversation as conversation_examples
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample


@DATASETS.register("synthetic_conversation")
class SyntheticConversationAdapter(DatasetAdapter):
    """Conversations where each utterance's label is the cue of an earlier one (known ground truth)."""

    class Options(DatasetAdapter.Options):
        n_conversations: int = Field(60, ge=1, description="conversations per split")
        min_length: int = Field(4, ge=2)
        max_length: int = Field(10, ge=2)
        num_classes: int = Field(3, ge=2)
        dim: int = Field(8, ge=2, description="feature dimension of each modality")
        noise: float = Field(0.3, ge=0.0, description="Gaussian feature noise std")
        lag: int = Field(1, ge=1, description="label = cue of the utterance this many turns earlier")
        speakers: int = Field(2, ge=1, description="speakers taking turns in order")
        seed: int = 0
        target_name: str = "label"

        @model_validator(mode="after")
        def _lengths(self) -> SyntheticConversationAdapter.Options:
            if self.max_length < self.min_length or self.min_length <= self.lag:
                raise ValueError("need lag < min_length <= max_length")
            return self

    needs_root = False
    options: Options
    write_example = staticmethod(conversation_examples.synthetic_conversation)

    def load(self, root: Path | None, split: str) -> list[Sample]:
        o = self.options
        protos = np.random.default_rng(o.seed).normal(size=(2, o.num_classes, o.dim))
        protos /= np.linalg.norm(protos, axis=-1, keepdims=True)
        rng = np.random.default_rng([o.seed, zlib.crc32(split.encode())])
        samples = []
        for c in range(o.n_conversations):
            n = int(rng.integers(o.min_length, o.max_length + 1))
            cues = rng.integers(0, o.num_classes, size=n)
            for i in range(n):
                text = protos[0, cues[i]] + rng.normal(scale=o.noise, size=o.dim)
                audio = 0.5 * protos[1, cues[i]] + rng.normal(scale=o.noise, size=o.dim)
                label = int(cues[i - o.lag]) if i >= o.lag else None
                samples.append(
                    Sample(
                        id=f"{split}/c{c:04d}/u{i:02d}",
                        features={"text": text.astype(np.float32), "audio": audio.astype(np.float32)},
                        targets={o.target_name: label},
                        group=f"{split}/c{c:04d}",
                        order=i,
                        speaker=f"s{i % o.speakers}",
                    )
                )
        return samples
