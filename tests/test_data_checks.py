"""check-data catches an injected duplicate, a shared speaker and a shifted label distribution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from affectfusion.config import TaskConfig
from affectfusion.data.checks import check_data, check_markdown, check_splits
from affectfusion.data.fingerprints import normalise_text
from affectfusion.data.types import Sample
from tests.helpers import tiny_config

TASK = TaskConfig(name="emotion", type="classification", classes=["happy", "sad", "angry"])


def write_wav(path: Path, seed: int, gain: float = 0.5) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, gain * np.sin(np.linspace(0, 200 + seed, 8000)) * rng.uniform(0.5, 1, 8000), 16000)
    return path


def clean_splits(tmp_path: Path) -> dict[str, list[Sample]]:
    """Speaker-disjoint audio splits with the same label distribution."""
    splits = {}
    for k, (name, speakers) in enumerate({"train": ["s1", "s2", "s3"], "dev": ["s4"], "test": ["s5"]}.items()):
        samples = []
        for i in range(30 if name == "train" else 12):
            sid = f"{name}{i}"
            wav = write_wav(tmp_path / name / f"{sid}.wav", seed=100 * k + i)
            samples.append(
                Sample(sid, {}, {"emotion": TASK.classes[i % 3]}, group=speakers[i % len(speakers)], raw={"audio": wav})
            )
        splits[name] = samples
    return splits


def test_clean_splits_pass(tmp_path: Path) -> None:
    report = check_splits(clean_splits(tmp_path), [TASK], "train")
    assert not report["leaking"], report["leaks"]
    assert report["exact_duplicates"] == [] and report["near_duplicates"] == [] and report["group_overlap"] == []
    assert not any(s["shifted"] for s in report["tasks"]["emotion"]["label_shift"])


def test_injected_duplicate_shared_speaker_and_shift_are_caught(tmp_path: Path) -> None:
    splits = clean_splits(tmp_path)
    # an exact copy of a training file in test, and a louder re-recording of another (near duplicate)
    dup = tmp_path / "test" / "copy.wav"
    dup.write_bytes(splits["train"][0].raw["audio"].read_bytes())
    splits["test"][0].raw["audio"] = dup
    splits["test"][1].raw["audio"] = write_wav(tmp_path / "test" / "loud.wav", seed=1, gain=0.9)
    splits["dev"][0].group = "s2"  # a training speaker in dev
    for s in splits["test"]:
        s.targets["emotion"] = "angry"  # test holds one class only
    report = check_splits(splits, [TASK], "train")
    assert report["leaking"]
    assert report["group_overlap"] == [{"splits": ["train", "dev"], "groups": ["s2"], "n_groups": 1}]
    exact = report["exact_duplicates"]
    assert len(exact) == 1 and exact[0]["n"]["test"] == 1 and exact[0]["examples"][0] == ["train0", "test0"]
    near_ids = {tuple(e) for d in report["near_duplicates"] for e in d["examples"]}
    assert ("train1", "test1") in near_ids
    shift = {s["split"]: s for s in report["tasks"]["emotion"]["label_shift"]}
    assert shift["test"]["shifted"] and not shift["dev"]["shifted"] and shift["test"]["tvd"] == pytest.approx(2 / 3)
    text = check_markdown(report)
    assert "LEAKAGE" in text and "s2" in text and "test0 = train0" in text and "label distribution of test" in text


def test_text_duplicates_and_missing_modalities() -> None:
    assert normalise_text("  Okay!! ") == normalise_text("okay") == "okay"
    train = [Sample(f"t{i}", {}, {"emotion": "happy"}, raw={"text": f"sentence number {i}"}) for i in range(200)]
    test = [Sample(f"e{i}", {}, {"emotion": "happy"}, raw={"text": f"another {i}"}) for i in range(100)]
    test[0].raw["text"] = "Sentence number 5!"  # near only
    test[1].raw = {}  # missing text
    report = check_splits({"train": train, "test": test}, [TASK], "train")
    assert report["exact_duplicates"] == [] and report["near_duplicates"][0]["n"]["test"] == 1
    assert report["missing_modality_rates"]["test"]["text"] == pytest.approx(0.01)
    assert not report["leaking"]  # near duplicates warn, they do not block


def test_synthetic_groups_are_not_leakage() -> None:
    report = check_data(tiny_config())
    assert report["group_overlap"] == [] and not report["groups_identify_sources"] and not report["leaking"]


def test_one_shared_input_of_a_multimodal_sample_is_a_warning(tmp_path: Path) -> None:
    splits = clean_splits(tmp_path)
    for samples in splits.values():
        for s in samples:
            s.raw["text"] = "the same sentence everywhere"  # text repeats, the audio differs
    report = check_splits(splits, [TASK], "train")
    assert not report["leaking"] and report["duplicate_samples"] == []
    assert any(w.startswith("exact duplicates:") and "text input" in w for w in report["warnings"])
