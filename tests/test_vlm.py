"""The vision-language path (P4): targets, parser, and train -> save -> reload -> generate -> parse
with a tiny random BLIP-2 built from config objects (the same loading code as a real folder)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from affectfusion.cli import main
from affectfusion.errors import AffectFusionError
from affectfusion.recipes import config_kind
from affectfusion.recipes.vlm.config import VLMConfig, load_vlm_config, validate_vlm
from affectfusion.recipes.vlm.items import FaceItem
from affectfusion.recipes.vlm.parse import parse_output
from affectfusion.recipes.vlm.targets import (
    CANONICAL,
    EMOTIONS,
    PROTOTYPES,
    resolve_label_map,
    target_action_units,
    target_text,
    target_vector,
)
from tests.helpers import call_cli, run_cli

FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
DARK, BRIGHT = 40, 210  # two images a tiny model can tell apart


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny model's ops are so small that extra threads only add overhead (10x on a busy 2-core box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- targets and parser (no model) --------------------------------------------------------------


def test_fer_classes_map_to_the_six_basic_emotions_and_neutral() -> None:
    mapping = resolve_label_map(FER_CLASSES)
    assert mapping["happy"] == "happiness" and mapping["angry"] == "anger" and mapping["sad"] == "sadness"
    assert sorted(mapping.values()) == sorted(CANONICAL)
    assert resolve_label_map(["pos", "neg"], {"pos": "joy", "neg": "sad"}) == {"pos": "happiness", "neg": "sadness"}
    with pytest.raises(AffectFusionError, match=r"class 'bored'.*targets\.label_map\.bored"):
        resolve_label_map(["happy", "bored"])
    with pytest.raises(AffectFusionError, match="both map to 'happiness'"):
        resolve_label_map(["happy", "joy"])


@pytest.mark.parametrize("emotion", CANONICAL)
def test_every_target_text_parses_back_to_its_label_vector_and_prototype_aus(emotion: str) -> None:
    parsed = parse_output(target_text(emotion))
    assert parsed.parse_ok and parsed.issues == []
    assert parsed.emotions == [emotion]
    assert parsed.top_emotion == emotion
    assert [parsed.emotion_vector[e] for e in EMOTIONS] == target_vector(emotion)
    assert parsed.action_units == target_action_units(emotion) == [f"AU{a}" for a in PROTOTYPES[emotion]]


def test_prototype_table_is_the_emfacs_one() -> None:
    assert PROTOTYPES["happiness"] == (6, 12)
    assert PROTOTYPES["sadness"] == (1, 4, 15)
    assert PROTOTYPES["surprise"] == (1, 2, 5, 26)
    assert PROTOTYPES["fear"] == (1, 2, 4, 5, 7, 20, 26)
    assert PROTOTYPES["anger"] == (4, 5, 7, 23)
    assert PROTOTYPES["disgust"] == (9, 15, 16)
    assert target_vector("neutral") == [0.0] * 6 and "Action units: none" in target_text("neutral")


def test_parser_reads_other_wordings_and_orders() -> None:
    p = parse_output("This face exhibits: Happy and Surprised. Emotion vector [0.8, 0, 0, 0, 0.6, 0]. AUs: AU6, au12B")
    assert p.parse_ok and p.emotions == ["happiness", "surprise"] and p.top_emotion == "happiness"
    assert p.emotion_vector["surprise"] == 0.6 and p.action_units == ["AU6", "AU12"]
    # A header naming the six emotions in another order is honoured.
    p = parse_output(
        "vector (sadness, happiness, anger, fear, surprise, disgust): [0.9, 0.1, 0, 0, 0, 0]. "
        "Emotions: sadness. Action units: none"
    )
    assert p.parse_ok and p.emotion_vector["sadness"] == 0.9 and p.top_emotion == "sadness" and p.action_units == []


def test_parser_ranks_named_emotions_by_the_vector_and_flags_disagreement() -> None:
    p = parse_output("Emotions: fear, anger. Emotion vector: [0, 0, 0.9, 0.2, 0, 0]. Action units: AU4")
    assert p.top_emotion == "anger" and p.issues == []
    p = parse_output("Emotions: fear. Emotion vector: [0, 0, 0.9, 0.2, 0, 0]. Action units: AU4")
    assert p.top_emotion == "fear" and p.parse_ok
    assert any("differs" in issue for issue in p.issues)
    p = parse_output("Emotion vector: [0, 0, 0, 0, 0, 0]. Action units: none")  # no emotion named: the vector's
    assert p.top_emotion == "neutral" and not p.parse_ok


@pytest.mark.parametrize(
    ("text", "emotions", "top", "issue"),
    [
        # truncated mid-vector (max_new_tokens reached)
        (
            "This face exhibits: sad. Emotion vector (happiness, sadness, anger, fear, surprise, disgust): [0.1, 0.9",
            ["sadness"],
            "sadness",
            "expected 6",
        ),
        # wrong number of values
        (
            "This face exhibits: fear. Emotion vector: [0.0, 0.0, 0.2, 0.9]. Action units: AU1",
            ["fear"],
            "fear",
            "4 values",
        ),
        # no sections at all, emotion words only
        ("Happy, Surprised", ["happiness", "surprise"], "happiness", "no emotions section"),
        # named pairs instead of a bracketed vector
        ("happiness: 0.2, sadness = 0.7", ["happiness", "sadness"], "sadness", "name: value pairs"),
    ],
)
def test_parser_partial_outputs(text: str, emotions: list[str], top: str, issue: str) -> None:
    p = parse_output(text)
    assert not p.parse_ok
    assert p.emotions == emotions and p.top_emotion == top
    assert any(issue in i for i in p.issues), p.issues


@pytest.mark.parametrize("text", ["", None, "   ", "��\x00,,,111 [[ ]] )(", "[", "AU", "[1e999, nan, inf]", 42])
def test_parser_never_raises_on_malformed_output(text: object) -> None:
    p = parse_output(text)
    assert not p.parse_ok and p.top_emotion is None and p.emotion_vector == {}
    assert p.issues
    json.dumps(p.to_dict())


# -- config ---------------------------------------------------------------------------------------


def test_shipped_config_is_p4_and_needs_a_model_path() -> None:
    assert config_kind("face_vlm_lora") == "vlm"
    cfg = load_vlm_config("face_vlm_lora")
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules) == (16, 32, ["q_proj", "v_proj"])
    assert cfg.image_size == 336 and cfg.face.detector == "haar" and cfg.face.align
    assert cfg.data.adapter == "image_folder" and cfg.model.path is None
    assert cfg.face.no_face == "whole_frame"


def test_face_no_face_is_the_extractors_key_and_the_old_one_still_loads() -> None:
    base = {"name": "x", "data": {"root": "/d"}}
    assert validate_vlm({**base, "face": {"no_face": "skip"}}).face.no_face == "skip"
    assert validate_vlm({**base, "face": {"on_no_face": "full_image"}}).face.no_face == "whole_frame"
    assert validate_vlm({**base, "face": {"on_no_face": "skip"}}).face.no_face == "skip"
    with pytest.raises(AffectFusionError, match=r"face\.no_face only"):
        validate_vlm({**base, "face": {"on_no_face": "skip", "no_face": "skip"}})


def test_config_errors_name_the_field() -> None:
    base = {"name": "x", "data": {"root": "/d"}}
    with pytest.raises(AffectFusionError, match=r"give train\.steps or train\.epochs, not both"):
        validate_vlm({**base, "train": {"steps": 3, "epochs": 1}})
    with pytest.raises(AffectFusionError, match=r"unknown config key 'lora\.rank'"):
        validate_vlm({**base, "lora": {"rank": 4}})
    with pytest.raises(AffectFusionError, match=r"train\.device"):
        validate_vlm({**base, "train": {"steps": 1, "device": "gpu"}})
    with pytest.raises(AffectFusionError, match=r"train\.threads: threads must be auto or a positive number"):
        validate_vlm({**base, "train": {"steps": 1, "threads": 0}})
    assert isinstance(validate_vlm(base), VLMConfig)


def _run_cli(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["affectfusion", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code or 0


def test_missing_model_path_is_one_clear_error(monkeypatch, capsys, tmp_path: Path) -> None:
    code = _run_cli(monkeypatch, "train", "face_vlm_lora", "--out", str(tmp_path / "run"))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "model.path is not set" in err and "--set model.path=DIR" in err
    assert "python -m affectfusion.recipes.vlm.tiny DIR" in err
    code = _run_cli(
        monkeypatch, "train", "face_vlm_lora", "--set", f"model.path={tmp_path}", "--out", str(tmp_path / "r2")
    )
    assert code == 2 and "has no config.json" in capsys.readouterr().err


# -- the whole path with a tiny random BLIP-2 -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from affectfusion.recipes.vlm.tiny import build_tiny_blip2

    return build_tiny_blip2(tmp_path_factory.mktemp("tiny") / "blip2")


def _image(value: int) -> np.ndarray:
    return np.full((64, 64, 3), value, dtype=np.uint8)


@pytest.fixture(scope="module")
def two_image_folder(tmp_path_factory) -> Path:
    """An image_folder dataset: one dark 'happy' and one bright 'sad' image in train and dev."""
    from PIL import Image

    root = tmp_path_factory.mktemp("faces")
    for split in ("train", "dev"):
        for label, value in (("happy", DARK), ("sad", BRIGHT)):
            (root / split / label).mkdir(parents=True)
            Image.fromarray(_image(value)).save(root / split / label / f"{label}.png")
    return root


def test_tiny_model_folder_loads_like_a_real_one(tiny_model: Path) -> None:
    from affectfusion.recipes.vlm.model import load_blip2, prompt_ids
    from affectfusion.recipes.vlm.tiny import main as tiny_main

    names = {p.name for p in tiny_model.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names
    model, processor = load_blip2(tiny_model)
    assert model.config.text_config.model_type == "opt" and processor.num_query_tokens == 4
    # Our prefix is exactly what transformers' Blip2Processor builds: num_query_tokens image tokens first.
    prompt = load_vlm_config("face_vlm_lora").prompt
    expected = processor(images=[_image(DARK)], text=prompt).input_ids[0]
    assert prompt_ids(processor, prompt) == list(expected)
    assert expected[:4] == [model.config.image_token_index] * 4
    with pytest.raises(SystemExit, match="not empty"):
        tiny_main([str(tiny_model)])


def test_training_batch_scores_only_the_answer(tiny_model: Path) -> None:
    from affectfusion.recipes.vlm.model import IGNORE_INDEX, load_blip2, prompt_ids, training_batch

    model, processor = load_blip2(tiny_model)
    answers = [target_text("happiness"), target_text("fear")]  # different lengths: padding
    batch = training_batch(processor, model, [_image(DARK), _image(BRIGHT)], "Q: face? A:", answers)
    n_prefix = len(prompt_ids(processor, "Q: face? A:"))
    labels = batch["labels"]
    assert (labels[:, :n_prefix] == IGNORE_INDEX).all()
    for i, answer in enumerate(answers):
        scored = labels[i][labels[i] != IGNORE_INDEX].tolist()
        assert scored[-1] == processor.tokenizer.eos_token_id
        assert processor.tokenizer.decode(scored, skip_special_tokens=True) == " " + answer
        assert batch["attention_mask"][i].sum() == n_prefix + len(scored)


def test_lora_training_lowers_the_loss_and_changes_only_lora_weights(tiny_model: Path) -> None:
    import torch

    from affectfusion.recipes.vlm.model import add_lora, load_blip2
    from affectfusion.recipes.vlm.train import fit_lora

    cfg = validate_vlm(
        {
            "name": "fit",
            "data": {"root": "/unused"},
            "train": {"steps": 40, "lr": 0.01, "batch_size": 2},
            "lora": {"dropout": 0.0},
        }
    )
    model, processor = load_blip2(tiny_model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    model = add_lora(model, cfg.lora)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(".q_proj." in n or ".v_proj." in n for n in trainable)
    losses = fit_lora(
        model, processor, cfg, [_image(DARK), _image(BRIGHT)], [target_text("happiness"), target_text("sadness")]
    )
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    after = model.base_model.model.state_dict()
    for key, value in before.items():  # LoRA wraps q/v: their frozen weight moves to "<name>.base_layer.weight"
        moved = key.replace("q_proj.", "q_proj.base_layer.").replace("v_proj.", "v_proj.base_layer.")
        assert torch.equal(value, after[moved if moved in after else key]), key
    assert any(after[n.removeprefix("base_model.model.")].abs().sum() > 0 for n in trainable if "lora_B" in n)


@pytest.fixture(scope="module")
def trained_run(tiny_model: Path, two_image_folder: Path, tmp_path_factory) -> Path:
    """Train through the CLI exactly as a user would (200 steps on 2 images: ~2 s)."""
    out = tmp_path_factory.mktemp("runs") / "vlm"
    args = [
        "train",
        "face_vlm_lora",
        "--out",
        str(out),
        "--set",
        f"model.path={tiny_model}",
        "--set",
        f"data.root={two_image_folder}",
        "--set",
        "data.test_split=null",
        "--set",
        "train.epochs=null",
        "--set",
        "train.steps=200",
        "--set",
        "train.lr=0.01",
        "--set",
        "train.batch_size=2",
        "--set",
        "train.progress=false",
        "--set",
        "lora.dropout=0.0",
        "--set",
        "generation.max_new_tokens=100",
        "--set",
        "train.device=cpu",
        "--set",
        "train.threads=1",
    ]
    assert call_cli(args) == 0
    return out


def test_cli_run_directory_holds_only_lora_weights_as_safetensors(trained_run: Path, tiny_model: Path) -> None:
    from safetensors import safe_open

    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["kind"] == "vlm" and Path(cfg["model"]["path"]).is_absolute()
    meta = json.loads((trained_run / "meta.json").read_text())
    assert meta["finished"] and meta["steps"] == 200 and meta["label_map"] == {"happy": "happiness", "sad": "sadness"}
    assert meta["device"] == "cpu"
    assert meta["n_trainable"] < 0.2 * meta["n_parameters"]
    history = [json.loads(line) for line in (trained_run / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(10, 201, 10))
    assert history[-1]["loss"] < 0.25 * history[0]["loss"]
    files = sorted(p.name for p in (trained_run / "adapter").iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    assert not list(trained_run.rglob("*.bin")) and not list(trained_run.rglob("*.pt"))
    with safe_open(trained_run / "adapter" / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
        n_saved = sum(f.get_tensor(k).numel() for k in keys)
    assert keys and all("lora_" in k for k in keys)
    assert n_saved == meta["n_trainable"]
    base_bytes = (tiny_model / "model.safetensors").stat().st_size
    assert (trained_run / "adapter" / "adapter_model.safetensors").stat().st_size < 0.2 * base_bytes


def test_cli_run_scores_the_generated_answers(trained_run: Path) -> None:
    # What the run guarantees, not what a tiny model happens to memorise on this CPU: both dev images
    # are scored, and the metrics agree with the per-image rows written beside them.
    metrics = json.loads((trained_run / "eval" / "dev" / "metrics.json").read_text())
    rows = pd.read_csv(trained_run / "eval" / "dev" / "predictions.csv")
    assert metrics["n"] == 2 == len(rows) and metrics["split"] == "dev"
    assert metrics["accuracy"] == pytest.approx(rows["correct"].mean())
    assert metrics["parse_rate"] == pytest.approx(rows["parse_ok"].mean())
    for key in ("accuracy", "macro_f1", "parse_rate", "au_f1_vs_prototype"):
        assert 0.0 <= metrics[key] <= 1.0


def test_scoring_of_given_answers_matches_hand_computed_values(tmp_path: Path) -> None:
    from affectfusion.recipes.vlm.evaluate import score_predictions
    from affectfusion.recipes.vlm.predictor import VLMPrediction

    items = [FaceItem(f"i{k}", None, tmp_path / f"{k}.png", label) for k, label in enumerate(["happy", "sad", "sad"])]
    vector = {e: 0.0 for e in EMOTIONS}

    def answer(label: str | None, aus: list[str], top: str | None) -> VLMPrediction:
        v = dict(vector, **({top: 1.0} if top else {}))
        return VLMPrediction("text", [top] if top else [], v, aus, label, True, label is not None)

    predictions = [
        answer("happy", ["AU6", "AU12"], "happiness"),  # right, AUs exact, vector exact
        answer("happy", ["AU1"], "happiness"),  # wrong; AU1 is one of sadness's 1+4+15
        None,  # not scored (e.g. no face with face.no_face: skip)
    ]
    metrics, df = score_predictions(items, predictions, {"happy": "happiness", "sad": "sadness"})
    assert metrics["n"] == 2 and metrics["n_not_scored"] == 1 and len(df) == 2
    assert metrics["accuracy"] == 0.5 and metrics["parse_rate"] == 1.0
    # AUs: tp = 2 + 1, fp = 0, fn = 0 + 2 -> precision 1, recall 3/5, F1 = 0.75
    assert metrics["au_precision_vs_prototype"] == 1.0
    assert metrics["au_recall_vs_prototype"] == pytest.approx(0.6)
    assert metrics["au_f1_vs_prototype"] == pytest.approx(0.75)
    # Vectors: exact for the first; the second has two of six entries off by 1 -> MAE (0 + 2/6) / 2
    assert metrics["vector_mae"] == pytest.approx(1 / 6)
    assert metrics["per_class_f1"] == pytest.approx({"happy": 2 / 3, "sad": 0.0})


def test_predictor_reloads_the_run_and_generates_parsed_fields(trained_run: Path, two_image_folder: Path) -> None:
    from affectfusion.recipes.vlm.predictor import VLMPrediction, VLMPredictor
    from affectfusion.rundir import declared_kind

    assert declared_kind(trained_run) == "vlm"
    predictor = VLMPredictor.load(trained_run)
    assert predictor.classes == ["happy", "sad"]
    images = [
        two_image_folder / "dev" / "happy" / "happy.png",
        _image(BRIGHT),
        str(two_image_folder / "dev/sad/sad.png"),
    ]
    preds = predictor.predict(images, batch_size=2)
    assert [p.label for p in preds] == ["happy", "sad", "sad"]
    for p in preds:
        assert isinstance(p, VLMPrediction) and p.parse_ok and not p.face_found  # flat images: no face
        assert p.text.startswith("This face exhibits:")
        assert set(p.emotion_vector) == set(EMOTIONS)
    assert preds[0].action_units == ["AU6", "AU12"] and preds[0].emotions == ["happiness"]
    assert json.loads(json.dumps(preds[1].to_dict()))["label"] == "sad"


def test_predictor_rejects_bad_inputs_and_can_skip_faceless_images(trained_run: Path, tmp_path: Path) -> None:
    from affectfusion.recipes.vlm.predictor import VLMPredictor

    predictor = VLMPredictor.load(trained_run)
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(AffectFusionError, match="not an image"):
        predictor.predict([fake])
    with pytest.raises(AffectFusionError, match="uint8"):
        predictor.predict([np.zeros((8, 8, 3), dtype=np.float32)])
    with pytest.raises(AffectFusionError, match="shape"):
        predictor.predict([np.zeros((8, 8, 5), dtype=np.uint8)])
    skip = predictor.cfg.face.model_copy(update={"no_face": "skip"})
    skipping = VLMPredictor(
        predictor.cfg.model_copy(update={"face": skip}), predictor.model, predictor.processor, predictor.label_map
    )
    (pred,) = skipping.predict([_image(DARK)])
    assert not pred.face_found and pred.text == "" and pred.label is None and not pred.parse_ok


def test_rerun_refuses_to_overwrite_and_other_base_model_is_refused(
    trained_run: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from affectfusion.recipes.vlm.predictor import VLMPredictor
    from affectfusion.recipes.vlm.tiny import build_tiny_blip2

    model_path = yaml.safe_load((trained_run / "config.yaml").read_text())["model"]["path"]
    code = _run_cli(
        monkeypatch,
        "train",
        "face_vlm_lora",
        "--out",
        str(trained_run),
        "--set",
        f"model.path={model_path}",
        "--set",
        f"data.root={trained_run}",
    )
    assert code == 2 and "already exists" in capsys.readouterr().err
    other = build_tiny_blip2(tmp_path / "other", hidden_size=32)
    with pytest.raises(AffectFusionError, match="not the base model"):
        VLMPredictor.load(trained_run, model_path=other)


def test_unknown_lora_target_lists_the_linear_layers(tiny_model: Path) -> None:
    from affectfusion.recipes.vlm.config import LoraSettings
    from affectfusion.recipes.vlm.model import add_lora, load_blip2

    model, _ = load_blip2(tiny_model)
    with pytest.raises(AffectFusionError, match=r"lora.target_modules: query_key.*q_proj"):
        add_lora(model, LoraSettings(target_modules=["q_proj", "query_key"]))


def test_shipped_config_trains_on_fer2013_subset(
    shared_data: Path, tiny_model: Path, tmp_path: Path, monkeypatch
) -> None:
    """The shipped P4 config, as is but shrunk, on real FER2013 images with Haar face + eye alignment."""
    out = tmp_path / "fer"
    sets = [
        f"model.path={tiny_model}",
        f"data.root={shared_data / 'fer2013_subset'}",
        "train.max_samples=12",
        "train.epochs=null",
        "train.steps=4",
        "train.progress=false",
        "generation.max_new_tokens=24",
    ]
    code = _run_cli(monkeypatch, "train", "face_vlm_lora", "--out", str(out), *[f"--set={s}" for s in sets])
    assert code == 0
    for split in ("dev", "test_small"):
        metrics = json.loads((out / "eval" / split / "metrics.json").read_text())
        assert metrics["n"] == 12 and metrics["n_unreadable"] == 0
        assert set(metrics["per_class_f1"]) == set(FER_CLASSES)
        assert 0.0 <= metrics["parse_rate"] <= 1.0 and 0.0 <= metrics["face_found_rate"] <= 1.0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_samples"] == {"train": 12, "dev": 12, "test_small": 12} and meta["train_faces_found"] > 0


def test_predict_cli_serves_a_vlm_run(
    trained_run: Path, two_image_folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`affectfusion predict` takes a VLM run too: one image as JSON, and a batch table with a bad row."""
    happy = two_image_folder / "dev" / "happy" / "happy.png"
    code, out, _ = run_cli(["predict", str(trained_run), "--image", str(happy), "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["tasks"]["emotion"]["label"] == "happy"
    table = tmp_path / "faces.csv"
    table.write_text(f"id,image\na,{happy}\nb,missing.png\n")
    code, _, _ = run_cli(["predict", str(trained_run), "--batch", str(table)], capsys, monkeypatch)
    assert code == 0
    rows = pd.read_csv(tmp_path / "faces.predictions.csv", keep_default_na=False)
    assert rows["emotion"].tolist() == ["happy", ""] and "missing.png" in rows["error"][1]
