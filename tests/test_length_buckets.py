"""Token rows encoded in length buckets: the cut is the cheapest, every utterance is encoded once, and the
LoRA encoder's outputs and gradients equal those of one call over the whole padded batch."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from affectfusion.config import validate
from affectfusion.data.conversation import ConversationDataset
from affectfusion.data.tasks import collator_for
from affectfusion.data.types import Sample
from affectfusion.models.hf_text import HFLoRAEncoder
from affectfusion.models.length_buckets import length_buckets, row_extents
from affectfusion.models.model import MultimodalModel

ONE_CALL = 10_000_000


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _cost(groups: list[tuple[list[int], int]], call_cost: int) -> int:
    return sum(len(rows) * length + call_cost for rows, length in groups)


@pytest.mark.parametrize("call_cost", [0, 1, 8, 32, 1000])
def test_buckets_hold_each_row_once_at_its_own_longest(call_cost: int) -> None:
    rnd = random.Random(call_cost)
    for _ in range(50):
        extents = [rnd.choice([0, rnd.randint(1, 64)]) for _ in range(rnd.randint(1, 40))]
        groups = length_buckets(extents, call_cost)
        rows = [r for members, _ in groups for r in members]
        assert sorted(rows) == [i for i, e in enumerate(extents) if e > 0]  # once each, empty rows never
        for members, length in groups:
            assert length == max(extents[r] for r in members)


def test_buckets_are_the_cheapest_cut() -> None:
    """Against every way of cutting the sorted distinct lengths into runs (brute force)."""
    rnd = random.Random(0)
    for _ in range(60):
        extents = [rnd.randint(1, 30) for _ in range(rnd.randint(1, 14))]
        call_cost = rnd.choice([0, 4, 16, 64])
        values = sorted(set(extents))
        best = None
        for cuts in itertools.product([False, True], repeat=len(values) - 1):
            total, count = 0, 0
            for k, v in enumerate(values):
                count += extents.count(v)
                if k == len(values) - 1 or cuts[k]:
                    total += count * v + call_cost
                    count = 0
            best = total if best is None else min(best, total)
        assert _cost(length_buckets(extents, call_cost), call_cost) == best


def test_call_cost_extremes_and_no_rows() -> None:
    extents = [5, 3, 5, 9, 0, 3]
    assert [length for _, length in length_buckets(extents, 0)] == [3, 5, 9]
    assert length_buckets(extents, ONE_CALL) == [([1, 5, 0, 2, 3], 9)]
    assert length_buckets([0, 0], 4) == []


def test_row_extents_reach_the_last_real_step() -> None:
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert row_extents(mask).tolist() == [2, 0, 3, 4]
    assert row_extents(torch.zeros(3, 0, dtype=torch.bool)).tolist() == [0, 0, 0]


def _encoders(folder: Path, dropout: float) -> tuple[HFLoRAEncoder, HFLoRAEncoder]:
    torch.manual_seed(0)

    def options(call_cost: int) -> HFLoRAEncoder.Options:
        chosen = {"model_path": str(folder), "lora_dropout": dropout, "call_cost_tokens": call_cost}
        return HFLoRAEncoder.Options.model_validate(chosen)

    bucketed = HFLoRAEncoder(1, 8, dropout, options(0))
    whole = HFLoRAEncoder(1, 8, dropout, options(ONE_CALL))
    with torch.no_grad():  # LoRA B starts at zero: make the adapters matter
        for p in bucketed.base.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
    whole.load_state_dict(bucketed.state_dict())
    return bucketed, whole


def _tokens(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), max(lengths), 1)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.bool)
    for i, n in enumerate(lengths):
        x[i, :n, 0] = torch.randint(1000, 5000, (n,), generator=g).float()
        mask[i, :n] = True
    return x, mask


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bucketed_encoder_equals_one_call(tiny_distilbert: Path, pooling: Literal["mean", "cls"]) -> None:
    bucketed, whole = _encoders(tiny_distilbert, 0.0)
    bucketed.pooling = whole.pooling = pooling
    x, mask = _tokens([3, 17, 0, 5, 40, 3, 9, 2])
    a, b = bucketed(x, mask), whole(x, mask)
    assert torch.allclose(a.pooled, b.pooled, atol=1e-5)
    real = mask.unsqueeze(-1)
    assert torch.allclose(a.seq * real, b.seq * real, atol=1e-5)
    assert a.pooled[2].abs().max() == 0  # a row without tokens pools to zero either way
    (a.pooled**2).sum().backward()
    (b.pooled**2).sum().backward()
    pairs = [(pa, pb) for pa, pb in zip(bucketed.parameters(), whole.parameters(), strict=True) if pa.requires_grad]
    assert pairs
    for pa, pb in pairs:
        assert pa.grad is not None and pb.grad is not None
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5, rtol=1e-4)


class BaseCalls:
    """Rows and padded tokens the encoder's transformer runs (a hook on its forward)."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        self.rows = 0
        self.padded = 0
        self.calls = 0
        base = encoder.base
        assert isinstance(base, torch.nn.Module)
        base.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, _module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs["input_ids"]
        self.calls += 1
        self.rows += ids.shape[0]
        self.padded += ids.numel()


def _conversations(n: int, seed: int = 0) -> list[Sample]:
    rnd = np.random.default_rng(seed)
    samples = []
    for c in range(n):
        for turn in range(int(rnd.integers(1, 9))):
            length = int(rnd.choice([3, 4, 6, 30]))
            ids = rnd.integers(1000, 5000, length).astype(np.float32)[:, None]
            speaker = "ab"[turn % 2]
            samples.append(
                Sample(
                    f"d{c}/{turn}",
                    {"text": ids},
                    {"y": int(rnd.integers(0, 2))},
                    group=f"d{c}",
                    order=turn,
                    speaker=speaker,
                )
            )
    return samples


def _model(folder: Path, call_cost: int) -> tuple[MultimodalModel, Any]:
    raw = {
        "name": "x",
        "data": {"adapter": "synthetic"},
        "tasks": [{"name": "y", "type": "classification", "classes": ["n", "p"]}],
        "model": {
            "hidden_dim": 8,
            "head_hidden": 8,
            "dropout": 0.0,
            "encoders": {
                "text": {"name": "hf_lora", "options": {"model_path": str(folder), "call_cost_tokens": call_cost}}
            },
            "context": {"name": "gru", "speakers": 4},
        },
    }
    cfg = validate(raw)
    ds = ConversationDataset(_conversations(12), name="dialogues")
    torch.manual_seed(0)
    return MultimodalModel(ds.modalities, cfg.tasks, cfg.model), (ds, cfg)


def test_dialogue_epoch_encodes_each_utterance_once_with_less_padding(tiny_distilbert: Path) -> None:
    """A pass over whole dialogues runs every utterance through the transformer exactly once, on fewer
    padded tokens than one call per batch, and the model's outputs are those of one call per batch."""
    bucketed, (ds, cfg) = _model(tiny_distilbert, 0)
    whole, _ = _model(tiny_distilbert, ONE_CALL)
    whole.load_state_dict(bucketed.state_dict())
    counts = {name: BaseCalls(m.encoders["text"]) for name, m in (("bucketed", bucketed), ("whole", whole))}
    loader = DataLoader(ds, batch_size=4, collate_fn=collator_for(ds.modalities, cfg.tasks))
    bucketed.eval(), whole.eval()
    with torch.no_grad():
        for batch in loader:
            a, b = bucketed(batch).outputs["y"], whole(batch).outputs["y"]
            assert torch.allclose(a, b, atol=1e-5)
    utterances = len(ds.samples)
    assert counts["bucketed"].rows == counts["whole"].rows == utterances
    assert counts["whole"].calls == len(loader) < counts["bucketed"].calls
    assert counts["bucketed"].padded < counts["whole"].padded
