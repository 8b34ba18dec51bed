"""A tiny DAIC-WOZ in the published layout (the corpus itself is licence-restricted).

File names, separators, headers and column counts follow the distribution: tab-separated
transcripts, header-less 74-column COVAREP at 100 Hz with VUV in column 2 (unvoiced frames zeroed
as in the corpus), OpenFace/CLNF ``.txt`` files with ", "-separated headers at 30 fps, and the three
split CSVs. PHQ-8 drives the participant's words, F0 and a few MCEPs, and the AU12/AU15 intensities,
so a model can learn something from every modality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectfusion.data.examples import ExampleSpec

PHQ8_ITEMS = ["NoInterest", "Depressed", "Sleep", "Tired", "Appetite", "Failure", "Concentrating", "Moving"]
AU_R = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU09", "AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU25", "AU26"]
AU_C = ["AU04", "AU12", "AU15", "AU23", "AU28", "AU45"]
LOW_WORDS = ["tired", "hopeless", "alone", "sad", "sleep", "nothing", "worried"]
HIGH_WORDS = ["good", "great", "friends", "fun", "happy", "family", "excited"]
ELLIE = ["how are you doing today", "where are you from originally", "tell me about your last vacation"]


def make_daic_woz(root: Path, n_participants: int = 12, seed: int = 0, seconds: float = 20.0) -> Path:
    """Write participants 300.. with a ~50/25/25 train/dev/test split; returns ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pids = [300 + i for i in range(n_participants)]
    n_train, n_dev = max(1, n_participants // 2), max(1, n_participants // 4)
    splits = {"train": pids[:n_train], "dev": pids[n_train : n_train + n_dev], "test": pids[n_train + n_dev :]}
    rows: dict[str, list[str]] = {k: [] for k in splits}
    for split, members in splits.items():
        for pid in members:
            items = rng.binomial(3, rng.uniform(0.05, 0.95), size=8)  # spread scores over 0-24
            score = int(items.sum())
            gender = int(rng.integers(0, 2))
            binary = int(score >= 10)
            if split == "test":
                rows[split].append(f"{pid},{binary},{score},{gender}")
            else:
                rows[split].append(",".join(map(str, [pid, binary, score, gender, *items])))
            _write_participant(root / f"{pid}_P", pid, score / 24.0, rng, seconds)
    header = ",".join(["Participant_ID", "PHQ8_Binary", "PHQ8_Score", "Gender"] + [f"PHQ8_{i}" for i in PHQ8_ITEMS])
    for split, name in (("train", "train_split_Depression_AVEC2017.csv"), ("dev", "dev_split_Depression_AVEC2017.csv")):
        (root / name).write_text("\n".join([header, *rows[split]]) + "\n")
    (root / "full_test_split.csv").write_text(
        "\n".join(["Participant_ID,PHQ_Binary,PHQ_Score,Gender", *rows["test"]]) + "\n"
    )
    (root / "test_split_Depression_AVEC2017.csv").write_text(
        "\n".join(["participant_ID,Gender"] + [f"{r.split(',')[0]},{r.split(',')[3]}" for r in rows["test"]]) + "\n"
    )
    return root


def daic_woz(root: Path) -> ExampleSpec:
    """Four participants of 4 s each; the dev split holds one."""
    make_daic_woz(root, n_participants=4, seconds=4.0)
    return ExampleSpec("dev", ("phq8", "depressed"), {"audio_steps": 8, "video_steps": 8})


def _write_participant(folder: Path, pid: int, severity: float, rng: np.random.Generator, seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # Transcript: Ellie asks, the participant answers with words tilted by severity.
    lines, t = ["start_time\tstop_time\tspeaker\tvalue"], 1.0
    for question in ELLIE:
        lines.append(f"{t:.3f}\t{t + 2.1:.3f}\tEllie\t{question}")
        t += 3.0
        words = [
            str(rng.choice(LOW_WORDS if rng.random() < severity else HIGH_WORDS))
            for _ in range(int(rng.integers(3, 8)))
        ]
        lines.append(f"{t:.3f}\t{t + 2.5:.3f}\tParticipant\tum i feel {' '.join(words)}")
        t += 3.5
    (folder / f"{pid}_TRANSCRIPT.csv").write_text("\n".join(lines) + "\n")

    # COVAREP at 100 Hz: F0 falls and some MCEPs shift with severity; unvoiced frames are zeros
    # except MCEPs/HMPD, as in the corpus.
    n = int(seconds * 100)
    cov = rng.normal(0.0, 1.0, size=(n, 74))
    vuv = (rng.random(n) < 0.6).astype(float)
    cov[:, 0] = (180.0 - 60.0 * severity + rng.normal(0, 10, n)) * vuv
    cov[:, 1] = vuv
    cov[:, 2:11] *= vuv[:, None]
    cov[:, 11:16] += 2.0 * severity
    np.savetxt(folder / f"{pid}_COVAREP.csv", cov, delimiter=",", fmt="%.6g")

    # OpenFace/CLNF at 30 fps, about 5 % of frames without a tracked face (zeros, success 0).
    m = int(seconds * 30)
    success = (rng.random(m) > 0.05).astype(int)
    confidence = np.where(success == 1, rng.uniform(0.85, 0.98, m), 0.0)
    frame = np.arange(1, m + 1)
    stamp = (frame - 1) / 30.0
    au_r = np.clip(rng.normal(0.5, 0.4, size=(m, len(AU_R))), 0, 5)
    au_r[:, AU_R.index("AU12")] += 2.0 * (1 - severity)
    au_r[:, AU_R.index("AU15")] += 1.5 * severity
    au_c = (rng.random((m, len(AU_C))) < 0.3).astype(float)
    aus = np.column_stack([frame, stamp, confidence, success, au_r, au_c])
    aus[success == 0, 4:] = 0.0
    au_header = ["frame", "timestamp", "confidence", "success"] + [f"{a}_r" for a in AU_R] + [f"{a}_c" for a in AU_C]
    _write_clnf(folder / f"{pid}_CLNF_AUs.txt", au_header, aus)
    pose = np.column_stack(
        [frame, stamp, confidence, success, rng.normal([10, 30, 600], [5, 5, 20], (m, 3)), rng.normal(0, 0.1, (m, 3))]
    )
    pose[success == 0, 4:] = 0.0
    _write_clnf(
        folder / f"{pid}_CLNF_pose.txt",
        ["frame", "timestamp", "confidence", "success", "Tx", "Ty", "Tz", "Rx", "Ry", "Rz"],
        pose,
    )


def _write_clnf(path: Path, header: list[str], values: np.ndarray) -> None:
    """OpenFace 0.x text output: ", " between fields, integer frame/success columns."""
    lines = [", ".join(header)]
    for row in values:
        fields = [str(int(row[0])), f"{row[1]:.4g}", f"{row[2]:.6g}", str(int(row[3]))]
        lines.append(", ".join(fields + [f"{v:.6g}" for v in row[4:]]))
    path.write_text("\n".join(lines) + "\n")
