"""Every registered context stage (plus option variants that change the computation path), the
conversation windows that feed them, and the truth-known synthetic task.

Parametrised over ``CONTEXTS.names()``, so a stage registered later is tested automatically, on
the example input the base class provides (fused vectors plus three modalities' own vectors, one of
them missing from some utterances, for stages that read each modality).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from affectfusion.config import validate
from affectfusion.data.conversation import ConversationDataset, make_windows
from affectfusion.data.tasks import collator_for
from affectfusion.data.types import ConversationIndex, Sample
from affectfusion.errors import AffectFusionError
from affectfusion.models.context import CONTEXTS, ContextStage, Streams
from affectfusion.models.model import MultimodalModel
from affectfusion.pipeline import load_dataset
from affectfusion.training.predict import predict, score
from affectfusion.training.trainer import Trainer
from tests.helpers import conversation_config

DIM = 8
VARIANTS = {
    "transformer[causal]": ("transformer", {"causal": True}),
    "gru[causal]": ("gru", {"bidirectional": False}),
}
NAMES = CONTEXTS.names() + list(VARIANTS)
CAUSAL = ["none", *VARIANTS]


def build(name: str, speakers: int = 0, seed: int = 0) -> ContextStage:
    torch.manual_seed(seed)
    base, options = VARIANTS.get(name, (name, {}))
    cls = CONTEXTS.get(base)
    return cls(DIM, 0.1, speakers, cls.Options(**options), {m: DIM for m in "abc"}).eval()


def example() -> tuple[torch.Tensor, ConversationIndex, Streams]:
    x, index = ContextStage.example_input(DIM)
    return x, index, ContextStage.example_streams(DIM)


def subset(index: ConversationIndex, rows: torch.Tensor) -> ConversationIndex:
    return ConversationIndex(index.conversation[rows], index.position[rows], index.speaker[rows], index.scored[rows])


def take(streams: Streams, rows: torch.Tensor | slice) -> Streams:
    return Streams({m: v[rows] for m, v in streams.values.items()}, {m: p[rows] for m, p in streams.present.items()})


def changed_where(streams: Streams, rows: torch.Tensor, noise: float = 5.0) -> Streams:
    """The same streams with every modality's values changed in ``rows`` ([B] bool)."""
    values = {m: torch.where(rows[:, None], v * noise + 3, v) for m, v in streams.values.items()}
    return Streams(values, streams.present)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("speakers", [0, 3])
def test_forward_backward_shape_finite(name: str, speakers: int) -> None:
    stage = build(name, speakers).train()
    x, index, streams = example()
    x.requires_grad_(True)
    for v in streams.values.values():
        v.requires_grad_(True)
    out = stage(x, index, streams)
    assert out.shape == (x.shape[0], stage.out_dim)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for v in streams.values.values():
        assert v.grad is None or torch.isfinite(v.grad).all()
    for p in stage.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_row_order_and_other_conversations_do_not_matter(name: str) -> None:
    stage = build(name, speakers=3)
    x, index, streams = example()
    with torch.no_grad():
        out = stage(x, index, streams)
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(stage(x[perm], subset(index, perm), take(streams, perm)), out[perm])
        # Conversation 0 alone (positions unchanged) gives the same outputs as in the full batch.
        rows = torch.nonzero(index.conversation == 0).squeeze(1)
        alone = subset(index, rows)
        torch.testing.assert_close(stage(x[rows], alone, take(streams, rows)), out[rows])
        # Changing every other conversation changes nothing in conversation 0.
        other = index.conversation != 0
        changed = torch.where(other[:, None], x * 5 + 3, x)
        torch.testing.assert_close(stage(changed, index, changed_where(streams, other))[rows], out[rows])


@pytest.mark.parametrize("name", NAMES)
def test_without_index_each_row_is_its_own_conversation(name: str) -> None:
    stage = build(name)
    x, _, streams = example()
    with torch.no_grad():
        alone = torch.cat([stage(x[i : i + 1], None, take(streams, slice(i, i + 1))) for i in range(x.shape[0])])
        torch.testing.assert_close(stage(x, None, streams), alone)


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_outputs_ignore_the_future(name: str) -> None:
    stage = build(name, speakers=3)
    x, index, streams = example()
    with torch.no_grad():
        out = stage(x, index, streams)
        for cut in range(4):
            future = index.position > cut
            changed = torch.where(future[:, None], torch.randn_like(x) * 10, x)
            again = stage(changed, index, changed_where(streams, future, 10.0))
            torch.testing.assert_close(again[~future], out[~future])


@pytest.mark.parametrize("name", ["gru", "mmmu_ba", "transformer"])
def test_bidirectional_outputs_read_the_future(name: str) -> None:
    stage = build(name)
    x, index, streams = example()
    with torch.no_grad():
        first = (index.conversation == 0) & (index.position == 0)
        later = (index.conversation == 0) & ~first
        changed = torch.where(later[:, None], x * 10, x)
        again = stage(changed, index, changed_where(streams, later, 10.0))
        assert not torch.allclose(again[first], stage(x, index, streams)[first])


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name: str, tmp_path) -> None:
    stage = build(name, speakers=2)
    x, index, streams = example()
    save_file(stage.state_dict(), tmp_path / "w.safetensors")
    again = build(name, speakers=2, seed=5)
    again.load_state_dict(load_file(tmp_path / "w.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(again(x, index, streams), stage(x, index, streams))


def _utt(conv: str, i: int, speaker: str | None = None) -> Sample:
    return Sample(
        id=f"{conv}/{i}",
        features={"t": np.full(2, i, np.float32)},
        targets={"y": 0},
        group=conv,
        order=i,
        speaker=speaker,
    )


def test_windows_overlap_as_unscored_context() -> None:
    conv = [_utt("a", i) for i in range(7)]
    windows = make_windows(conv, window=4, overlap=2)
    assert [[s.order for s in w.samples] for w in windows] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6]]
    assert [w.scored for w in windows] == [[True] * 4, [False, False, True, True], [False, False, True]]
    scored = [s.order for w in windows for s, k in zip(w.samples, w.scored, strict=True) if k]
    assert scored == list(range(7))
    assert len(make_windows(conv, window=0, overlap=0)) == 1


def test_dataset_orders_conversations_and_collator_masks_context_rows() -> None:
    samples = [_utt("b", 1, "x"), _utt("a", 2, "p"), _utt("b", 0, "y"), _utt("a", 0, "q"), _utt("a", 1, "p")]
    ds = ConversationDataset(samples, window=2, overlap=1)
    assert [s.id for s in ds.samples] == ["b/0", "b/1", "a/0", "a/1", "a/2"]
    assert len(ds) == 3  # b: one window; a: [0, 1] and [1, 2] (1 as context)
    tasks = validate(
        {
            "name": "x",
            "data": {"adapter": "synthetic"},
            "tasks": [{"name": "y", "type": "classification", "classes": ["n", "p"]}],
        }
    ).tasks
    batch = collator_for(ds.modalities, tasks)([ds[i] for i in range(len(ds))])
    assert batch.ids == ["b/0", "b/1", "a/0", "a/1", "a/1", "a/2"]
    c = batch.conversation
    assert c.conversation.tolist() == [0, 0, 1, 1, 2, 2]
    assert c.position.tolist() == [0, 1, 0, 1, 0, 1]
    assert c.speaker.tolist() == [1, 2, 1, 2, 1, 1]  # numbered by first appearance per window
    assert c.scored.tolist() == [True, True, True, True, False, True]
    assert batch.target_mask["y"].tolist() == c.scored.tolist()
    with pytest.raises(AffectFusionError, match="two utterances at order 0"):
        ConversationDataset([_utt("a", 0), Sample("a/x", {"t": np.zeros(2, np.float32)}, group="a", order=0)])


@pytest.mark.slow
def test_truth_known_every_context_stage_beats_none_widely(tmp_path) -> None:
    """The label is the previous utterance's cue: no context sits at chance (1/3), context reads it."""
    acc = {}
    for name in NAMES:
        base, options = VARIANTS.get(name, (name, {}))
        cfg = validate(conversation_config(base, options))
        result = Trainer(cfg, tmp_path / name).fit()
        acc[name] = result["test"]["accuracy"]
    assert acc["none"] < 0.45, acc
    for name in NAMES:
        if name != "none":
            assert acc[name] > acc["none"] + 0.35, acc


@pytest.mark.parametrize("fusion", ["concat", "cross_attention", "gated", "low_rank", "tensor", "transformer"])
def test_context_follows_every_fusion_and_predictions_line_up(fusion: str) -> None:
    raw = conversation_config("gru", fusion={"name": fusion}, encoders={"audio": {"name": "bilstm"}})
    cfg = validate(raw)
    ds = load_dataset(cfg, "dev")
    model = MultimodalModel(ds.modalities, cfg.tasks, cfg.model)
    preds = predict(model, ds, {}, batch_size=4)
    assert preds.ids == [s.id for s in ds.samples]
    assert preds.proba["label"].shape == (len(ds.samples), 3)
    truth = [-1 if s.targets["label"] is None else s.targets["label"] for s in ds.samples]
    assert preds.y_true["label"].tolist() == truth
    assert score(preds, cfg.tasks, "dev")["n"] == len(ds.samples)


def test_media_table_order_and_speaker_columns(tmp_path) -> None:
    from affectfusion.data.media_table import MediaTableAdapter

    (tmp_path / "train.csv").write_text("id,text,dialogue,turn,who,y\na1,hi,d1,1,Ann,0\na0,yo,d1,0,Bob,1\n")
    opts = {"inputs": {"text": "text"}, "targets": {"y": "y"}, "group_column": "dialogue"}
    adapter = MediaTableAdapter(MediaTableAdapter.Options(**opts, order_column="turn", speaker_column="who"))
    samples = adapter.load(tmp_path, "train")
    assert [(s.group, s.order, s.speaker) for s in samples] == [("d1", 1, "Ann"), ("d1", 0, "Bob")]
    (tmp_path / "bad.csv").write_text("id,text,dialogue,turn,y\na1,hi,d1,first,0\n")
    bad = MediaTableAdapter(MediaTableAdapter.Options(**opts, table="bad.csv", order_column="turn"))
    with pytest.raises(AffectFusionError, match=r"bad\.csv: row 2 column 'turn' = 'first': expected an integer"):
        bad.load(tmp_path, "train")


@pytest.mark.parametrize(
    ("adapter", "folder", "options", "speakers"),
    [
        ("meld", "meld", {}, True),
        ("emorynlp", "emorynlp", {}, True),
        ("mosi", "cmu_mosi_unimodal", {}, False),
    ],
)
def test_shared_corpora_give_conversation_order(shared_data, adapter, folder, options, speakers) -> None:
    from affectfusion.data import build_adapter
    from affectfusion.data.conversation import conversations

    cfg = validate(
        {"name": "x", "data": {"adapter": adapter, "options": options}, "tasks": [{"name": "y", "type": "regression"}]}
    )
    samples = build_adapter(cfg.data).load(shared_data / folder, "dev")
    assert all(s.group is not None and s.order is not None for s in samples)
    assert all((s.speaker is not None) == speakers for s in samples)
    convs = conversations(samples, "dev")
    assert sum(len(c) for c in convs) == len(samples)
    assert max(len(c) for c in convs) > 3  # real conversations, not singletons


def test_predictor_reads_a_conversation_and_causal_live_use_matches_replay(tmp_path) -> None:
    from affectfusion.serve.predictor import Predictor

    raw = conversation_config("transformer", {"causal": True})
    raw["model"]["context"]["speakers"] = 2
    cfg = validate(raw)
    Trainer(cfg, tmp_path / "run").fit()
    predictor = Predictor.load(tmp_path / "run")
    ds = load_dataset(cfg, "test")
    conv = [s for s in ds.samples if s.group == ds.samples[0].group]
    inputs = [{m: x for m, x in s.features.items()} for s in conv]
    speakers = [s.speaker for s in conv]
    full = predictor.predict_conversation(inputs, speakers=speakers)
    truth = [s.targets["label"] for s in conv]
    labels = [int(p.tasks["label"]["label"] == "abc"[y]) for p, y in zip(full, truth, strict=True) if y is not None]
    assert sum(labels) >= len(labels) - 1  # the context model reads the previous turn
    alone = predictor.predict(inputs)  # no turns: every utterance on its own
    assert [p.tasks for p in alone] != [p.tasks for p in full]
    for k in range(1, len(conv)):  # live: only the turns so far
        live = predictor.predict_conversation(inputs[: k + 1], speakers=speakers[: k + 1])[-1]
        probs, replay = live.tasks["label"]["probabilities"], full[k].tasks["label"]["probabilities"]
        assert probs == pytest.approx(replay, abs=1e-5)
    with pytest.raises(AffectFusionError, match="1 speakers for"):
        predictor.predict_conversation(inputs, speakers=speakers[:1])


def test_batch_table_with_group_and_order_is_read_as_conversations(tmp_path) -> None:
    from affectfusion.serve.batch import predict_table
    from affectfusion.serve.predictor import Predictor

    Trainer(validate(conversation_config("gru")), tmp_path / "run").fit()
    predictor = Predictor.load(tmp_path / "run")
    ds = load_dataset(validate(conversation_config("gru")), "test")
    conv = [s for s in ds.samples if s.group == ds.samples[0].group]
    for m in ("text", "audio"):
        for k, s in enumerate(conv):
            np.save(tmp_path / f"{m}{k}.npy", s.features[m])
    rows = [
        f"u{k},{m_text},{m_audio},c1,{k},{s.speaker}"
        for k, s in enumerate(conv)
        for m_text, m_audio in [(f"text{k}.npy", f"audio{k}.npy")]
    ]
    # Rows in reverse order: the order column, not the file order, puts them in sequence.
    (tmp_path / "conv.csv").write_text("id,text,audio,group,order,speaker\n" + "\n".join(reversed(rows)) + "\n")
    table = predict_table(predictor, tmp_path / "conv.csv", progress=False)
    direct = predictor.predict_conversation([dict(s.features) for s in conv], speakers=[s.speaker for s in conv])
    by_id = dict(zip(table["id"], table["label"], strict=True))
    assert [by_id[f"u{k}"] for k in range(len(conv))] == [p.tasks["label"]["label"] for p in direct]
