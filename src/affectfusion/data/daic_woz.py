"""DAIC-WOZ (AVEC 2017 depression sub-challenge) in its published layout: one sample per participant.

Layout (each ``<pid>_P.zip`` of the distribution unzipped into a folder of the same name)::

    <root>/
      train_split_Depression_AVEC2017.csv   Participant_ID, PHQ8_Binary, PHQ8_Score, Gender, PHQ8_NoInterest, ...
      dev_split_Depression_AVEC2017.csv     same columns
      full_test_split.csv                   Participant_ID, PHQ_Binary, PHQ_Score, Gender
      <pid>_P/
        <pid>_TRANSCRIPT.csv    tab-separated, header start_time, stop_time, speaker, value;
                                speaker is "Ellie" (the virtual interviewer) or "Participant"
        <pid>_COVAREP.csv       no header, 74 comma-separated columns every 10 ms (100 Hz): F0, VUV,
                                NAQ, QOQ, H1H2, PSP, MDQ, peakSlope, Rd, Rd_conf, creak, MCEP_0-24,
                                HMPDM_0-24, HMPDD_0-12; VUV (column 2) is 1 when voiced
        <pid>_CLNF_AUs.txt      OpenFace/CLNF at 30 fps, ", "-separated with header: frame, timestamp,
                                confidence, success, AU01_r ... AU26_r (14 intensities), AU04_c ... AU45_c
        <pid>_CLNF_pose.txt     frame, timestamp, confidence, success, Tx, Ty, Tz, Rx, Ry, Rz
        (also _CLNF_gaze.txt, _CLNF_features.txt, _CLNF_features3D.txt; any of them can feed ``video``)

The corpus documentation names the AU file ``_CLNF_AUs.csv`` while the distributed zips hold
``.txt``; both extensions are accepted for every CLNF file.

Split names map to the split files (``split_files``): ``train`` and ``dev`` are the AVEC 2017
splits, ``test`` is ``full_test_split.csv`` (its labels were released after the challenge; the
PHQ8_/PHQ_ column prefixes both work). ``test_split_Depression_AVEC2017.csv`` has no labels; map a
name to it to predict without scores.

Per participant:

- ``raw["text"]``: the participant's utterances (speaker ``Participant``) joined by spaces, for a
  text extractor in ``data.extract.text``.
- ``features["audio"]``: COVAREP ``[audio_steps, 74]``: voiced frames only (``voiced_only``: the
  corpus documentation says F0, NAQ, QOQ, ... are meaningless when VUV = 0, and scrubbed spans are
  zeros), then the interview is cut into ``audio_steps`` equal consecutive spans and each span
  averaged (``mean``) or one evenly spaced frame taken per span (``sample``, as P1 did).
- ``features["video"]``: ``video_columns`` of one CLNF file, frames with ``success == 0`` (no face
  tracked) dropped, reduced to ``video_steps`` the same way. The default 10 columns are the AU
  intensities AU01, 02, 04, 05, 06, 10, 12, 14, 15, 17: brow, eye, cheek and lip actions, including
  those studied as depression markers (reduced smiling AU12, AU14 dimpler, AU15 lip-corner
  depressor, AU04 brow lowerer). Left out: AU25/AU26 (lips part, jaw drop), which mostly track
  speaking, and AU09/AU20 (nose wrinkler, lip stretcher), rarely active in interviews.
- targets ``phq8`` (PHQ-8 score, 0-24) and ``depressed`` (PHQ-8 binary, score >= 10); group = participant.

A sequence with fewer frames than the step count keeps all its frames (the collator pads and masks).
A missing or empty modality file leaves that modality missing for the participant.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from affectfusion.data.examples.daic_woz import daic_woz as daic_woz_example
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError

Modality = Literal["text", "audio", "video"]
ClnfFile = Literal["AUs", "pose", "gaze", "features", "features3D"]

COVAREP_COLUMNS = 74
VUV_COLUMN = 1
DEFAULT_SPLIT_FILES = {
    "train": "train_split_Depression_AVEC2017.csv",
    "dev": "dev_split_Depression_AVEC2017.csv",
    "test": "full_test_split.csv",
}
DEFAULT_VIDEO_COLUMNS = [
    "AU01_r",
    "AU02_r",
    "AU04_r",
    "AU05_r",
    "AU06_r",
    "AU10_r",
    "AU12_r",
    "AU14_r",
    "AU15_r",
    "AU17_r",
]


def reduce_steps(x: np.ndarray, steps: int, how: Literal["mean", "sample"]) -> np.ndarray:
    """``[T, D]`` -> ``[min(T, steps), D]``: means of ``steps`` equal consecutive spans, or one frame per span."""
    n = x.shape[0]
    if n <= steps:
        return x
    if how == "sample":
        return x[np.linspace(0, n - 1, steps).round().astype(int)]
    bounds = np.linspace(0, n, steps + 1).astype(int)
    return np.add.reduceat(x, bounds[:-1], axis=0) / np.diff(bounds)[:, None]


@DATASETS.register("daic_woz")
class DaicWozAdapter(DatasetAdapter):
    """DAIC-WOZ interviews: participant transcript (raw text), COVAREP audio and CLNF video sequences, PHQ-8."""

    write_example = staticmethod(daic_woz_example)

    class Options(DatasetAdapter.Options):
        modalities: list[Modality] = Field(
            ["text", "audio", "video"], min_length=1, description="what to read: text (raw), audio, video"
        )
        split_files: dict[str, str] = Field(
            default_factory=lambda: dict(DEFAULT_SPLIT_FILES),
            description="split name -> split CSV (relative to root); default train/dev/test = the AVEC 2017 "
            "train and dev files and full_test_split.csv",
        )
        audio_steps: int = Field(100, ge=1, description="COVAREP frames are reduced to this many steps")
        video_steps: int = Field(100, ge=1, description="CLNF frames are reduced to this many steps")
        pooling: Literal["mean", "sample"] = Field(
            "mean", description="mean = average each of the equal spans; sample = one evenly spaced frame per span"
        )
        voiced_only: bool = Field(True, description="drop COVAREP frames with VUV = 0 (unvoiced or scrubbed)")
        video_file: ClnfFile = Field("AUs", description="CLNF file the video columns come from")
        video_columns: list[str] = Field(
            default_factory=lambda: list(DEFAULT_VIDEO_COLUMNS),
            min_length=1,
            description="columns of video_file used as video features (default: 10 AU intensities)",
        )
        skip_missing: bool = Field(
            False, description="skip participants of the split with no <pid>_P folder instead of failing"
        )

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        o = self.options
        labels = self._read_split(root, split)
        folders = {pid: root / f"{pid}_P" for pid in labels}
        missing = [pid for pid, folder in folders.items() if not folder.is_dir()]
        if missing and not o.skip_missing:
            shown = ", ".join(f"{pid}_P" for pid in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise AffectFusionError(
                f"{root}: {len(missing)} of {len(labels)} participants of split {split!r} have no folder "
                f"({shown}); unzip <pid>_P.zip into <root>/<pid>_P/ or set data.options.skip_missing=true"
            )
        samples = []
        for pid, (score, binary) in labels.items():
            folder = folders[pid]
            if not folder.is_dir():
                continue
            sample = Sample(
                id=str(pid),
                features={},
                targets={"phq8": score, "depressed": binary},
                group=str(pid),
                source=str(folder),
            )
            if "text" in o.modalities:
                text = self._read_transcript(folder / f"{pid}_TRANSCRIPT.csv")
                if text:
                    sample.raw["text"] = text
            if "audio" in o.modalities:
                audio = self._read_covarep(folder / f"{pid}_COVAREP.csv")
                if audio is not None:
                    sample.features = {**sample.features, "audio": audio}
            if "video" in o.modalities:
                video = self._read_clnf(folder, pid)
                if video is not None:
                    sample.features = {**sample.features, "video": video}
            if sample.features or sample.raw:
                samples.append(sample)
        self._check_modalities(samples, split)
        return samples

    def _check_modalities(self, samples: list[Sample], split: str) -> None:
        """A modality no participant has is a layout problem (wrong file names), not missing data."""
        for m in self.options.modalities:
            if samples and not any(m in s.features or m in s.raw for s in samples):
                pattern = {
                    "text": "<pid>_TRANSCRIPT.csv",
                    "audio": "<pid>_COVAREP.csv",
                    "video": f"<pid>_CLNF_{self.options.video_file}.txt (or .csv)",
                }[m]
                raise AffectFusionError(
                    f"split {split!r}: none of the {len(samples)} participants has usable {m} ({pattern} in <pid>_P/)"
                )

    def _read_split(self, root: Path, split: str) -> dict[int, tuple[float | None, int | None]]:
        """Participant id -> (PHQ-8 score, PHQ-8 binary), either None when the file has no labels."""
        files = self.options.split_files
        if split not in files:
            raise AffectFusionError(f"unknown DAIC-WOZ split {split!r}; data.options.split_files has {sorted(files)}")
        path = root / files[split]
        if not path.is_file():
            found = sorted(p.name for p in root.glob("*.csv"))
            raise AffectFusionError(
                f"split file {path} does not exist; CSV files in {root}: {', '.join(found) or 'none'}"
            )
        df = pd.read_csv(path, skipinitialspace=True)
        cols = {c.strip().lower(): c for c in df.columns}
        pid_col = cols.get("participant_id")
        if pid_col is None:
            raise AffectFusionError(f"{path}: no Participant_ID column (columns: {', '.join(map(str, df.columns))})")
        score_col = cols.get("phq8_score", cols.get("phq_score"))
        binary_col = cols.get("phq8_binary", cols.get("phq_binary"))
        out: dict[int, tuple[float | None, int | None]] = {}
        for _, row in df.iterrows():
            if pd.isna(row[pid_col]):
                continue
            score = float(row[score_col]) if score_col is not None and pd.notna(row[score_col]) else None
            binary = int(row[binary_col]) if binary_col is not None and pd.notna(row[binary_col]) else None
            out[int(row[pid_col])] = (score, binary)
        return out

    @staticmethod
    def _read_transcript(path: Path) -> str | None:
        """The participant's utterances in order, joined by spaces."""
        if not path.is_file():
            return None
        df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
        df.columns = [c.strip().lower() for c in df.columns]
        if not {"speaker", "value"} <= set(df.columns):
            raise AffectFusionError(
                f"{path}: expected tab-separated columns start_time, stop_time, speaker, value; got {list(df.columns)}"
            )
        said = df.loc[df["speaker"].str.strip().str.lower() == "participant", "value"].str.strip()
        text = " ".join(v for v in said if v)
        return text or None

    def _read_covarep(self, path: Path) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            x = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
        except (ValueError, pd.errors.ParserError) as e:
            raise AffectFusionError(f"{path}: not a numeric COVAREP file (no header, 74 columns): {e}") from None
        if x.ndim != 2 or x.shape[1] != COVAREP_COLUMNS:
            raise AffectFusionError(f"{path}: expected {COVAREP_COLUMNS} columns, got {x.shape[1]}")
        x = x[np.isfinite(x).all(axis=1)]
        if self.options.voiced_only:
            x = x[x[:, VUV_COLUMN] > 0.5]
        if len(x) == 0:
            return None
        return reduce_steps(x, self.options.audio_steps, self.options.pooling).astype(np.float32)

    def _read_clnf(self, folder: Path, pid: int) -> np.ndarray | None:
        o = self.options
        candidates = [folder / f"{pid}_CLNF_{o.video_file}.{ext}" for ext in ("txt", "csv")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        df = pd.read_csv(path, skipinitialspace=True)
        df.columns = [str(c).strip() for c in df.columns]
        absent = [c for c in [*o.video_columns, "success"] if c not in df.columns]
        if absent:
            raise AffectFusionError(
                f"{path}: no column(s) {', '.join(absent)}; it has {', '.join(df.columns[:30])}"
                + (" ..." if len(df.columns) > 30 else "")
            )
        tracked = pd.to_numeric(df["success"], errors="coerce") == 1
        x = df.loc[tracked, o.video_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        if len(x) == 0:
            return None
        return reduce_steps(x, o.video_steps, o.pooling).astype(np.float32)
