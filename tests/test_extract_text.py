"""Text extractors: real MiniLM embeddings, a user's local model folder, lexicon scores, and the feature store."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # any attempt to reach a hub fails fast instead of hanging

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import affectfusion.extract.text  # noqa: F401  (registers the text extractors)
from affectfusion.errors import AffectFusionError
from affectfusion.extract import ExtractionError, Extractor, FeatureStore, Item, build_extractor
from affectfusion.extract.text import NRC_CATEGORIES, VADER_KEYS


@pytest.fixture(scope="module")
def minilm() -> Extractor:
    extractor = build_extractor("minilm", {}, "test")
    extractor.ensure_ready()
    return extractor


def embed(extractor: Extractor, texts: list[str]) -> list[np.ndarray]:
    out = extractor.extract_batch(texts)
    assert not [r for r in out if isinstance(r, ExtractionError)]
    return out  # type: ignore[return-value]


def test_minilm_sentence_embeddings_are_normalised_and_semantic(minilm: Extractor) -> None:
    love, adore, weather = embed(minilm, ["I love this film.", "I adore this movie.", "Rain is expected tomorrow."])
    for v in (love, adore, weather):
        assert v.shape == (384,) and v.dtype == np.float32
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert float(love @ adore) > float(love @ weather) + 0.3


def test_minilm_batching_does_not_change_embeddings(minilm: Extractor) -> None:
    texts = ["short", "a somewhat longer sentence that needs padding in a batch", "mid length text"]
    together = embed(minilm, texts)
    alone = [minilm.extract(t) for t in texts]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_minilm_token_output_and_max_length() -> None:
    tokens = build_extractor("minilm", {"output": "tokens", "max_length": 8}, "test")
    short, long = embed(tokens, ["Hello there", "one two three four five six seven eight nine ten"])
    assert short.shape == (4, 384)  # [CLS] hello there [SEP]
    assert long.shape == (8, 384)  # truncated to max_length


def test_minilm_left_truncation_keeps_the_end() -> None:
    left = build_extractor("minilm", {"output": "tokens", "max_length": 4, "truncation_side": "left"}, "test")
    (cut,) = embed(left, ["one two three four five"])
    (end,) = embed(left, ["four five"])  # [CLS] four five [SEP]: the same tokens at the same positions
    np.testing.assert_allclose(cut, end, atol=1e-5)


def test_minilm_empty_text_fails_alone(minilm: Extractor) -> None:
    out = minilm.extract_batch(["I am happy.", "", "I am sad.", "   \n", "Fine."])
    errors = [i for i, r in enumerate(out) if isinstance(r, ExtractionError)]
    assert errors == [1, 3]
    assert str(out[1]) == "empty text"
    assert all(out[i].shape == (384,) for i in (0, 2, 4))
    with pytest.raises(ExtractionError, match="empty text"):
        minilm.extract(" ")


def test_minilm_reads_text_files(minilm: Extractor, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("I love this film.", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    from_file, from_text, empty, missing = minilm.extract_batch(
        [tmp_path / "a.txt", "I love this film.", tmp_path / "empty.txt", tmp_path / "nope.txt"]
    )
    np.testing.assert_allclose(from_file, from_text, atol=1e-6)
    assert isinstance(empty, ExtractionError) and "empty text" in str(empty)
    assert isinstance(missing, ExtractionError) and "cannot read text" in str(missing)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, minilm: Extractor) -> Path:
    """A random 1-layer DistilBERT (hidden 32) saved like a user's fine-tuned model, with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    folder = tmp_path_factory.mktemp("tiny_distilbert")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm.model_dir()), local_files_only=True)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, hidden_dim=64, n_layers=1, n_heads=2)
    DistilBertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_local_model_folder(tiny_model: Path) -> None:
    sentence = build_extractor("minilm", {"model_path": str(tiny_model)}, "test")
    a, b = embed(sentence, ["I love this", "I hate this"])
    assert a.shape == (32,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(a, b)
    tokens = build_extractor("minilm", {"model_path": str(tiny_model), "output": "tokens"}, "test")
    (seq,) = embed(tokens, ["I love this"])
    assert seq.shape == (5, 32)
    assert sentence.describe()["options"]["model_path"] == str(tiny_model)


def test_local_model_resaved_gets_a_new_fingerprint(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    extractor = build_extractor("minilm", {"model_path": str(folder)}, "test")
    before = extractor.fingerprint()
    assert extractor.fingerprint() == before
    weights = next(folder.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # re-saved weights
    assert extractor.fingerprint() != before


@pytest.mark.parametrize("path", ["sentence-transformers/all-MiniLM-L6-v2", "/no/such/folder"])
def test_model_path_must_be_a_local_folder(path: str) -> None:
    extractor = build_extractor("minilm", {"model_path": path}, "test")
    with pytest.raises(AffectFusionError, match="is not a folder"):
        extractor.extract_batch(["hello"])


def test_folder_without_model_is_a_clear_error(tmp_path: Path) -> None:
    extractor = build_extractor("minilm", {"model_path": str(tmp_path)}, "test")
    with pytest.raises(AffectFusionError, match="cannot load a Hugging Face model"):
        extractor.extract_batch(["hello"])


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(AffectFusionError, match="unknown config key 'pooling'"):
        build_extractor("minilm", {"pooling": "cls"}, "data.extract.text.options")


def test_lexicon_scores() -> None:
    lexicon = build_extractor("lexicon", {}, "test")
    love, hate, neutral = (lexicon.extract(t) for t in ["I love this", "I hate this", "The table has four legs."])
    assert love.shape == (len(VADER_KEYS) + len(NRC_CATEGORIES),) == (14,)
    compound = VADER_KEYS.index("compound")
    assert love[compound] > 0 > hate[compound]
    nrc = {name: len(VADER_KEYS) + i for i, name in enumerate(NRC_CATEGORIES)}
    assert love[nrc["joy"]] == pytest.approx(1 / 3)  # "love" is one of three words
    assert hate[nrc["anger"]] > 0 and hate[nrc["joy"]] == 0
    assert neutral[len(VADER_KEYS) :].sum() == 0


def test_lexicon_matches_inflected_words() -> None:
    lexicon = build_extractor("lexicon", {}, "test")
    anger = len(VADER_KEYS) + NRC_CATEGORIES.index("anger")
    fear = len(VADER_KEYS) + NRC_CATEGORIES.index("fear")
    assert lexicon.extract("They hated it")[anger] > 0  # hated -> hate
    assert lexicon.extract("He killed them")[fear] > 0  # killed -> kill
    assert lexicon.extract("She cries")[len(VADER_KEYS) + NRC_CATEGORIES.index("sadness")] > 0  # cries -> cry


def test_lexicon_without_nrc_and_empty_text() -> None:
    vader_only = build_extractor("lexicon", {"nrc": False}, "test")
    assert vader_only.extract("What a wonderful day!").shape == (4,)
    out = vader_only.extract_batch(["", "ok"])
    assert isinstance(out[0], ExtractionError) and out[1].shape == (4,)


def test_feature_store_round_trip(minilm: Extractor, tmp_path: Path) -> None:
    texts = ["I love it.", "This is awful.", "", "See you tomorrow.", "I love it."]
    items = [Item(f"u{i}", t, f"dialogue.csv:{i + 2}") for i, t in enumerate(texts)]
    store = FeatureStore(tmp_path)
    first, report = store.run(minilm, items, progress=False)
    assert (report.computed, report.cached, len(report.failures)) == (4, 0, 1)
    assert set(first) == {"u0", "u1", "u3", "u4"}
    np.testing.assert_array_equal(first["u0"], first["u4"])  # same content, one cached array
    second, report = store.run(build_extractor("minilm", {}, "test"), items, progress=False)  # a new process's
    assert (report.computed, report.cached, len(report.failures)) == (0, 4, 1)
    for key, value in first.items():
        np.testing.assert_array_equal(second[key], value)
    failures = pd.read_csv(Path(report.folder) / "failures.csv")
    assert failures.to_dict("records") == [{"id": "u2", "source": "dialogue.csv:4", "error": "empty text"}]
    assert report.folder == str(store.folder(minilm))
