"""Issue #14's first-contact path: from a folder of 20 wavs, 20 face photos and a CSV of texts and
labels to a trained, tested and served model with one command that writes a starter config."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from affectfusion.data.starter import plan_table, split_rows
from affectfusion.errors import AffectFusionError
from tests.helpers import SHARED_DATA, run_cli

TEXTS = {
    "happiness": ["What a wonderful day this is!", "I got the job, I am so glad!", "This is the best news ever."],
    "sadness": ["I miss her so much it hurts.", "Nothing went right today.", "I feel so alone tonight."],
}
AUDIO = {"happiness": "03", "sadness": "04"}  # RAVDESS emotion codes


@pytest.fixture(scope="module")
def own_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a user brings: media in sub-folders and one CSV naming them, 10 rows per class."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (real-data tests run only next to the shared folder)")
    shared_data = SHARED_DATA
    folder = tmp_path_factory.mktemp("own")
    (folder / "audio").mkdir()
    (folder / "faces").mkdir()
    rows = []
    wavs = sorted((shared_data / "ravdess_speech_16k" / "train").glob("Actor_*/*.wav"))
    for label in ("happiness", "sadness"):
        faces = sorted((shared_data / "muxspace_faces_subset" / "train" / label).glob("*.jpg"))[:10]
        by_actor: dict[str, Path] = {}  # one clip per actor, so that speakers can be kept apart
        for w in wavs:
            if w.name.split("-")[2] == AUDIO[label]:
                by_actor.setdefault(w.parent.name, w)
        speech = list(by_actor.values())[:10]
        for i, (face, wav) in enumerate(zip(faces, speech, strict=True)):
            sid = f"{label[:3]}{i}"
            shutil.copy(face, folder / "faces" / f"{sid}.jpg")
            shutil.copy(wav, folder / "audio" / f"{sid}.wav")
            text = TEXTS[label][i % 3]
            rows.append(
                {
                    "id": sid,
                    "text": text,
                    "audio": f"audio/{sid}.wav",
                    "photo": f"faces/{sid}.jpg",
                    "speaker": wav.parent.name,
                    "label": label,
                }
            )
    with (folder / "data.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_init_train_test_predict_serve(own_folder: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the config's paths must not depend on where the user stands
    code, out, err = run_cli(["init", str(own_folder)], capsys, monkeypatch)
    assert code == 0, err
    assert "text <- text" in out and "audio <- audio" in out and "image <- photo" in out
    assert "groups: speaker" in out  # found by its name: speakers never cross splits, and it is no input
    config = own_folder / "affectfusion.yaml"
    raw = yaml.safe_load(config.read_text())
    assert raw["tasks"][0]["classes"] == ["happiness", "sadness"] and raw["data"]["test_split"] == "test"

    run = tmp_path / "runs" / "own"
    sets = ["--set", "train.epochs=8", "--set", "train.progress=false", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    code, _, err = run_cli(["train", str(config), "--out", str(run), *sets], capsys, monkeypatch)
    assert code == 0, err
    assert (run / "eval" / "test" / "metrics.json").is_file()  # the test split was scored in the same run

    table = own_folder / "test.csv"
    code, out, err = run_cli(["test", str(run), "--table", str(table)], capsys, monkeypatch)
    assert code == 0, err
    assert (run / "eval" / "test" / "metrics.json").is_file() and "accuracy" in out

    preds = tmp_path / "preds.csv"
    code, _, err = run_cli(["predict", str(run), "--batch", str(table), "--out", str(preds)], capsys, monkeypatch)
    assert code == 0, err  # the table it was trained on, label column included, is accepted
    with preds.open() as f:
        predicted = list(csv.DictReader(f))
    assert len(predicted) == 4 and all(r["error"] == "" for r in predicted)

    from fastapi.testclient import TestClient

    from affectfusion.serve import load_predictor
    from affectfusion.serve.api import create_app

    with TestClient(create_app(load_predictor(run))) as client:
        sid = predicted[0]["id"]
        files = {
            "audio": (f"{sid}.wav", (own_folder / "audio" / f"{sid}.wav").read_bytes(), "audio/wav"),
            "image": (f"{sid}.jpg", (own_folder / "faces" / f"{sid}.jpg").read_bytes(), "image/jpeg"),
        }
        response = client.post("/predict", data={"text": "What a wonderful day this is!"}, files=files)
    assert response.status_code == 200, response.text
    assert response.json()["tasks"]["label"]["label"] in ("happiness", "sadness")


def test_init_without_a_table_writes_a_template(tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, _ = run_cli(["init", str(tmp_path / "new")], capsys, monkeypatch)
    assert code == 0 and (tmp_path / "new" / "affectfusion.yaml").is_file()
    assert (tmp_path / "new" / "data_template.csv").read_text().startswith("id,text,audio,image,label")
    code, _, err = run_cli(["init", str(tmp_path / "new")], capsys, monkeypatch)
    assert code == 2 and "--force" in err  # never overwritten silently


def test_plan_names_what_it_cannot_infer(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("id,text,mood\n1,hello there you,x\n")
    with pytest.raises(AffectFusionError, match=r"no label column found.*--label"):
        plan_table(table)
    table.write_text("id,text,label\n1,hello there you,\n")
    with pytest.raises(AffectFusionError, match="empty label in line"):
        plan_table(table)


def test_split_rows_is_group_disjoint_and_stratified() -> None:
    import pandas as pd

    df = pd.DataFrame({"label": ["a", "b"] * 30, "g": [f"s{i // 4}" for i in range(60)]})
    parts = split_rows(df, "label", "g")
    groups = [set(parts[s]["g"]) for s in ("train", "dev", "test")]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    parts = split_rows(df, "label", None)
    assert {len(parts["train"]), len(parts["dev"]), len(parts["test"])} == {36, 12}
    assert set(parts["dev"]["label"]) == {"a", "b"}


def test_bad_media_rows_are_named_before_extraction(own_folder: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(
        own_folder, broken, ignore=shutil.ignore_patterns("affectfusion.yaml", "train.csv", "dev.csv", "test.csv")
    )
    (broken / "audio" / "hap0.wav").unlink()
    (broken / "faces" / "sad1.jpg").write_bytes(b"")
    assert run_cli(["init", str(broken)], capsys, monkeypatch)[0] == 0
    sets = ["--set", f"data.cache_dir={tmp_path / 'cache'}", "--out", str(tmp_path / "run")]
    code, _, err = run_cli(["train", str(broken / "affectfusion.yaml"), *sets], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    assert "found before extraction" in err and "drop_modality" in err
    assert ("hap0" in err and "missing" in err) or ("sad1" in err and "empty" in err)


@pytest.mark.parametrize("side", [48, 200])
def test_init_on_face_images_says_what_happens_without_a_face(side: int, tmp_path: Path, capsys, monkeypatch) -> None:
    """48 px face crops (FER-style) hold no face a detector finds: init reads them whole (no_face:
    whole_frame) and training works; on larger images it keeps no_face: error, and the error for a
    faceless image names the full config key and its two alternatives."""
    from PIL import Image

    rng = np.random.default_rng(side)
    (tmp_path / "faces").mkdir()
    rows = []
    for i in range(24):
        label = ("happy", "sad")[i % 2]
        pixels = (rng.random((side, side)) * 255).astype("uint8")  # noise: no face in it
        Image.fromarray(pixels).save(tmp_path / "faces" / f"f{i}.png")
        rows.append({"id": f"f{i}", "image": f"faces/f{i}.png", "label": label})
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    code, _, err = run_cli(["init", str(tmp_path / "table.csv")], capsys, monkeypatch)
    assert code == 0, err
    raw = yaml.safe_load((tmp_path / "affectfusion.yaml").read_text())
    policy = raw["data"]["extract"]["image"]["options"]["no_face"]
    assert policy == ("whole_frame" if side == 48 else "error")
    sets = ["--set", "train.epochs=1", "--set", "train.progress=false", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    args = ["train", str(tmp_path / "affectfusion.yaml"), "--out", str(tmp_path / "run"), *sets]
    code, _, err = run_cli(args, capsys, monkeypatch)
    if side == 48:
        assert code == 0, err
    else:
        assert code == 2 and "Traceback" not in err
        assert "data.extract.image.options.no_face: whole_frame reads the whole image" in " ".join(err.split())


def test_init_prints_the_split_sizes_it_wrote_and_warns_when_one_is_too_small(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """60 rows of 7 speakers asked 60/20/20: speakers stay whole, so dev gets a handful; init says how many
    (console and YAML) and what so few rows cannot carry (epoch selection, calibration, conformal sets)."""
    folder = tmp_path / "own"
    folder.mkdir()
    labels = [("happy", "sad", "angry")[i % 3] for i in range(60)]
    rows = ["id,text,speaker,label"] + [
        f"r{i},I feel so {y} today number {i},spk{i % 7},{y}" for i, y in enumerate(labels)
    ]
    (folder / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, err = run_cli(["init", str(folder)], capsys, monkeypatch)
    assert code == 0, err
    sizes = {s: len((folder / f"{s}.csv").read_text().splitlines()) - 1 for s in ("train", "dev", "test")}
    written = f"train {sizes['train']}, dev {sizes['dev']}, test {sizes['test']} rows (asked 60/20/20; each 'speaker'"
    assert f"splits: {written}" in " ".join(out.split())
    assert written in (folder / "affectfusion.yaml").read_text()
    assert sizes["dev"] < 30 and f"dev has only {sizes['dev']} samples" in " ".join(err.split())
    assert "calibrate (needs 30 samples)" in " ".join(err.split())
