"""The MMMU-BA context stage beyond the registry-wide contract (tests/test_context.py): padded
utterances, missing modalities, gradients, the bi-modal attention itself, and the model feeding it
each modality's vectors."""

from __future__ import annotations

import pytest
import torch

from affectfusion.config import validate
from affectfusion.models.context import CONTEXTS, ContextStage, Streams
from affectfusion.models.context.mmmu_ba import MmmuBaContext, attend
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.training.trainer import Trainer
from tests.helpers import conversation_config

DIM = 6
NAMES = ("a", "b", "c")


def stage(with_fused: bool = True, dropout: float = 0.0) -> MmmuBaContext:
    torch.manual_seed(0)
    options = MmmuBaContext.Options(rnn_size=5, dense_size=4, rnn_dropout=dropout, with_fused=with_fused)
    built = CONTEXTS.get("mmmu_ba")(DIM, dropout, 0, options, {m: DIM for m in NAMES})
    assert isinstance(built, MmmuBaContext)
    return built.eval()


def padded(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, Streams]:
    """Two conversations of lengths 4 and 2, padded to 4; ``b`` missing from conversation 0's second utterance."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    x = torch.randn(2, 4, DIM, generator=g)
    values = {m: torch.randn(2, 4, DIM, generator=g) for m in NAMES}
    present = {m: mask.clone() for m in NAMES}
    present["b"][0, 1] = False
    return x, mask, Streams(values, present)


def test_output_size_counts_every_pair_and_modality() -> None:
    x, mask, streams = padded()
    out = stage().contextualise_streams(x, mask, streams)
    # 3 pairs x 2 directions + 3 modalities, 4 wide each, plus the fused vector.
    assert out.shape == (2, 4, 4 * (6 + 3) + DIM) and stage().out_dim == out.shape[-1]
    assert stage(with_fused=False).out_dim == 4 * 9


def test_padded_utterances_do_not_change_real_outputs() -> None:
    s = stage()
    x, mask, streams = padded()
    with torch.no_grad():
        out = s.contextualise_streams(x, mask, streams)
        pad = ~mask
        garbage = torch.full_like(x, float("nan"))
        x2 = torch.where(pad[..., None], garbage, x)
        values = {m: torch.where(pad[..., None], torch.randn_like(v) * 1e3, v) for m, v in streams.values.items()}
        # Padding that claims to be present is still padding: the mask decides.
        present = {m: p | pad for m, p in streams.present.items()}
        again = s.contextualise_streams(x2, mask, Streams(values, present))
    torch.testing.assert_close(again[mask], out[mask])
    assert torch.isfinite(again[mask]).all()


def test_a_missing_modality_cannot_leak_and_is_not_read_as_present() -> None:
    s = stage()
    x, mask, streams = padded()
    missing = ~streams.present["b"] & mask
    with torch.no_grad():
        out = s.contextualise_streams(x, mask, streams)
        values = dict(streams.values)
        values["b"] = torch.where(missing[..., None], float("nan"), values["b"])
        again = s.contextualise_streams(x, mask, Streams(values, streams.present))
        torch.testing.assert_close(again, out)
        # Marking it present (the same values) changes the outputs: absence is information, not zeros.
        present = {**streams.present, "b": mask.clone()}
        assert not torch.allclose(s.contextualise_streams(x, mask, Streams(streams.values, present))[mask], out[mask])
        # A modality absent from every utterance still gives finite outputs.
        none_b = {**streams.present, "b": torch.zeros_like(mask)}
        assert torch.isfinite(s.contextualise_streams(x, mask, Streams(values, none_b))[mask]).all()


def test_gradients_reach_every_weight_and_only_present_inputs() -> None:
    s = stage().train()
    x, mask, streams = padded()
    for v in streams.values.values():
        v.requires_grad_(True)
    out = s.contextualise_streams(x, mask, streams)
    (out[mask] * torch.randn_like(out[mask])).sum().backward()
    for name, p in s.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    for m, v in streams.values.items():
        assert v.grad is not None
        real = streams.present[m] & mask
        assert v.grad[real].abs().sum() > 0, m
        assert (v.grad[~real] == 0).all(), m


def test_attention_is_the_papers_and_skips_disallowed_keys() -> None:
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(1, 3, 4, generator=g), torch.randn(1, 3, 4, generator=g)
    allowed = torch.tensor([[True, False, True]])
    expected = torch.softmax(q[0] @ k[0, [0, 2]].T, dim=-1) @ k[0, [0, 2]] * q[0]
    torch.testing.assert_close(attend(q, k, allowed)[0], expected)
    k2 = k.clone()
    k2[0, 1] = 1e4
    torch.testing.assert_close(attend(q, k2, allowed), attend(q, k, allowed))
    assert (attend(q, k, torch.zeros_like(allowed)) == 0).all()


def test_built_for_modalities_it_refuses_fused_vectors_only() -> None:
    x, index = ContextStage.example_input(DIM)
    with pytest.raises(ValueError, match="needs each modality's vectors"):
        stage()(x, index)


def test_without_modalities_it_is_a_bidirectional_gru_over_the_fused_vectors() -> None:
    torch.manual_seed(0)
    cls = CONTEXTS.get("mmmu_ba")
    s = cls(DIM, 0.0, 0, cls.Options(rnn_size=5, dense_size=4)).eval()
    x, index = ContextStage.example_input(DIM)
    first = (index.conversation == 0) & (index.position == 0)
    later = (index.conversation == 0) & ~first
    with torch.no_grad():
        out = s(x, index)
        assert out.shape == (x.shape[0], s.out_dim) and s.out_dim == 4 + DIM  # one stream, no pairs
        assert not torch.allclose(s(torch.where(later[:, None], x * 10, x), index)[first], out[first])


@pytest.mark.parametrize("with_fused", [True, False])
def test_the_model_feeds_it_each_modality_and_trains(with_fused: bool, tmp_path) -> None:
    """The paper's design (no fused vector) only works if the model hands the stage each modality."""
    raw = conversation_config(
        "mmmu_ba", {"rnn_size": 8, "dense_size": 8, "with_fused": with_fused}, fusion={"name": "concat"}
    )
    raw["train"]["epochs"] = 2
    cfg = validate(raw)
    ds = load_dataset(cfg, "dev")
    model = MultimodalModel(ds.modalities, cfg.tasks, cfg.model)
    m = len(ds.modalities)
    fused = model.fusion.out_dim if with_fused else 0
    assert model.context.out_dim == 8 * (m + m * (m - 1)) + fused
    assert isinstance(model.context, MmmuBaContext) and model.context.names == list(ds.modalities)
    result = Trainer(cfg, tmp_path / "run").fit()
    assert 0.0 <= result["test"]["accuracy"] <= 1.0
