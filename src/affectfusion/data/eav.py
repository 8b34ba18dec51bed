"""EAV (EEG-Audio-Video, Lee et al., Scientific Data 2024) in its published layout: one sample per trial.

42 subjects each hold 200 twenty-second trials of a cue-based conversation: 5 emotions (neutral,
sadness, anger, happiness, calmness) x 2 conditions (listening to an actor, speaking back) x 20.
Layout (Zenodo 10.5281/zenodo.10205702, read as the authors' loaders in github.com/nubcico/EAV do)::

    <root>/subject<N>/            N = 1..42, written subject1 or subject01 (both accepted)
      EEG/subject<N>_eeg.mat        variable 'seg1' (or 'seg'): [10000 time, 30 channels, 200 trials], 500 Hz
      EEG/subject<N>_eeg_label.mat  variable 'label': [10, 200] one-hot over emotion x condition
      Audio/<III>_Trial_<TT>_Speaking_<Emotion>_aud.wav   speaking trials only (100 per subject)
      Video/<III>_Trial_<TT>_<Listening|Speaking>_<Emotion>.mp4

Label row r is emotion ``r // 2`` in the order neutral, sadness, anger, happiness, calmness (the
class order of the authors' loaders: ``emotion_to_index`` in Dataload_audio.py, the N/S/A/H/R
comment in Dataload_eeg.py) and condition ``r % 2``. Two points are not stated by the authors: which
parity is speaking (their EEG loader calls rows 1, 3, 5, 7, 9 "listening classes", while a
third-party audit of all 8,400 media files against the label matrices found odd rows = speaking,
the default of ``label_speaking_rows``), and the pairing of files with EEG trials (``III`` = EEG
trial index + 1, from the alternating listen/speak protocol). Because file names carry emotion and
condition, every media file is checked against the label of its trial, and loading fails naming
the file if either assumption does not hold for the data at hand.

Alternative EEG layout, for data converted from other tools or MATLAB v7.3 files that scipy cannot
read: one ``.npy`` per trial, ``EEG/<III>_Trial_<TT>_<Condition>_<Emotion>.npy`` holding a
``[channels, time]`` array at ``eeg_sfreq``; the file name then carries the labels. Used when
``EEG/`` has no ``*_eeg.mat``.

Per trial: ``raw["eeg"]`` = :class:`Signal` ``[channels, time]`` (optionally resampled, e.g. to
100 Hz as the authors do, which also keeps 42 subjects' EEG in memory), ``raw["audio"]`` /
``raw["video"]`` = file paths, targets ``emotion`` and ``condition``; group = subject. Splits are
subject-disjoint: ``splits`` lists subject numbers per split name, or ``split_file`` (a CSV with
columns ``subject``, ``split``) does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from scipy.io import loadmat
from scipy.signal import resample_poly

from affectfusion.data.examples.eav import eav as eav_example
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample, Signal
from affectfusion.errors import AffectFusionError

EMOTIONS = ("neutral", "sadness", "anger", "happiness", "calmness")  # label row // 2
CONDITIONS = ("listening", "speaking")
SUBJECT_RE = re.compile(r"subject0*(\d+)_*", re.IGNORECASE)  # the authors strip a trailing "__"
TRIAL_RE = re.compile(
    r"(?P<trial>\d+)_Trial_\d+_(?P<condition>Listening|Speaking)_(?P<emotion>[A-Za-z]+?)(?:_[A-Za-z]+)?\.(?:wav|mp4|npy)",
    re.IGNORECASE,
)
Modality = Literal["eeg", "audio", "video"]
Condition = Literal["listening", "speaking"]


@dataclass
class _Trial:
    emotion: str
    condition: str
    origin: str  # where the labels were first read, for mismatch messages
    raw: dict[str, Signal | Path] = field(default_factory=dict)
    source: str | None = None


@DATASETS.register("eav")
class EAVAdapter(DatasetAdapter):
    """EAV trials: 30-channel EEG (Signal), speech .wav and video .mp4 paths; 5 emotions; subject-disjoint splits."""

    write_example = staticmethod(eav_example)

    class Options(DatasetAdapter.Options):
        modalities: list[Modality] = Field(
            ["eeg", "audio", "video"], min_length=1, description="what to read: eeg (Signal), audio / video (paths)"
        )
        conditions: list[Condition] = Field(
            ["listening", "speaking"], min_length=1, description="trials to keep (audio exists for speaking only)"
        )
        splits: dict[str, list[int]] = Field(
            default_factory=lambda: {
                "train": list(range(1, 31)),
                "dev": list(range(31, 37)),
                "test": list(range(37, 43)),
            },
            description="split name -> subject numbers (default 30 / 6 / 6 of the 42 subjects)",
        )
        split_file: str | None = Field(
            None, description="CSV (relative to root) with columns subject, split; replaces 'splits' when set"
        )
        eeg_sfreq: float = Field(500.0, gt=0, description="sampling rate of the stored EEG (Hz)")
        eeg_resample_hz: float | None = Field(
            None, gt=0, description="resample EEG to this rate on load (polyphase, anti-aliased); None = keep"
        )
        eeg_variable: str | None = Field(None, description="EEG variable in the .mat (default: 'seg1', else 'seg')")
        label_speaking_rows: Literal["odd", "even"] = Field(
            "odd", description="which rows of the [10, trials] label matrix are speaking trials (see the module doc)"
        )

        @model_validator(mode="after")
        def _check(self) -> EAVAdapter.Options:
            seen: dict[int, str] = {}
            for name, subjects in self.splits.items():
                for s in subjects:
                    if s in seen and seen[s] != name:
                        raise ValueError(f"subject {s} is in both split {seen[s]!r} and {name!r}")
                    seen[s] = name
            return self

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        o = self.options
        folders = {int(m.group(1)): p for p in root.iterdir() if p.is_dir() and (m := SUBJECT_RE.fullmatch(p.name))}
        wanted = self._split_subjects(root, split)
        absent = [s for s in wanted if s not in folders]
        if absent:
            raise AffectFusionError(
                f"{root}: split {split!r} names subject(s) {', '.join(map(str, absent))} with no subject<N> folder "
                f"(found: {', '.join(map(str, sorted(folders))) or 'none'})"
            )
        samples = []
        for number in wanted:
            subject = f"subject{number:02d}"
            for index, trial in sorted(self._read_subject(folders[number]).items()):
                raw: dict[str, Any] = {m: trial.raw[m] for m in o.modalities if m in trial.raw}
                if trial.condition not in o.conditions or not raw:
                    continue
                samples.append(
                    Sample(
                        id=f"{subject}/{index:03d}",
                        features={},
                        targets={"emotion": trial.emotion, "condition": trial.condition},
                        group=subject,
                        source=trial.source,
                        raw=raw,
                    )
                )
        if not samples:
            raise AffectFusionError(
                f"{root}: no {'/'.join(o.conditions)} trial of split {split!r} has any of {', '.join(o.modalities)} "
                "(looked for EEG/*_eeg.mat or EEG/*.npy, Audio/*.wav, Video/*.mp4 in each subject folder)"
            )
        return samples

    def _split_subjects(self, root: Path, split: str) -> list[int]:
        o = self.options
        if o.split_file is None:
            table = o.splits
        else:
            path = root / o.split_file
            if not path.is_file():
                raise AffectFusionError(f"split file {path} does not exist")
            df = pd.read_csv(path, dtype=str, skipinitialspace=True)
            if not {"subject", "split"} <= set(df.columns):
                raise AffectFusionError(f"{path}: expected columns subject, split; got {list(df.columns)}")
            table = {}
            for subject, name in zip(df["subject"], df["split"], strict=True):
                m = re.fullmatch(r"(?:subject)?0*(\d+)", str(subject).strip(), re.IGNORECASE)
                if m is None:
                    raise AffectFusionError(f"{path}: {subject!r} is not a subject number or subject<N> name")
                table.setdefault(str(name).strip(), []).append(int(m.group(1)))
        if split not in table:
            raise AffectFusionError(f"unknown EAV split {split!r}; splits defined: {', '.join(sorted(table))}")
        return table[split]

    def _read_subject(self, folder: Path) -> dict[int, _Trial]:
        """1-based trial number -> labels and raw inputs of one subject, cross-checked between sources."""
        trials: dict[int, _Trial] = {}
        eeg_dir = folder / "EEG"
        mats = sorted(eeg_dir.glob("*.mat")) if eeg_dir.is_dir() else []
        label_mats = [p for p in mats if "label" in p.name.lower()]
        signal_mats = [p for p in mats if "label" not in p.name.lower()]
        if len(label_mats) > 1 or len(signal_mats) > 1:
            raise AffectFusionError(
                f"{eeg_dir}: expected one EEG .mat and one label .mat, found {[p.name for p in mats]}"
            )
        if label_mats:
            speaking = 1 if self.options.label_speaking_rows == "odd" else 0
            for index, row in enumerate(self._read_labels(label_mats[0]), start=1):
                condition = CONDITIONS[int(row % 2 == speaking)]
                trials[index] = _Trial(EMOTIONS[row // 2], condition, f"{label_mats[0].name} trial {index}")
        want = self.options.modalities
        if "eeg" in want and signal_mats:
            if not label_mats:
                raise AffectFusionError(f"{eeg_dir}: {signal_mats[0].name} has no *_eeg_label.mat beside it")
            for index, signal in enumerate(self._read_eeg_mat(signal_mats[0], len(trials)), start=1):
                trials[index].raw["eeg"] = signal
                trials[index].source = f"{signal_mats[0]}#trial{index}"
        for modality, sub, ext in (("eeg", "EEG", ".npy"), ("audio", "Audio", ".wav"), ("video", "Video", ".mp4")):
            if modality not in want or (modality == "eeg" and signal_mats) or not (folder / sub).is_dir():
                continue
            for path in sorted((folder / sub).glob(f"*{ext}")):
                m = TRIAL_RE.fullmatch(path.name)
                if m is None:
                    continue
                index, emotion, condition = int(m["trial"]), m["emotion"].lower(), m["condition"].lower()
                if emotion not in EMOTIONS:
                    raise AffectFusionError(f"{path}: unknown emotion {m['emotion']!r} (expected one of {EMOTIONS})")
                trial = trials.setdefault(index, _Trial(emotion, condition, path.name))
                if (trial.emotion, trial.condition) != (emotion, condition):
                    raise AffectFusionError(
                        f"{path}: file says {condition}/{emotion} but {trial.origin} says "
                        f"{trial.condition}/{trial.emotion} (files do not match EEG trials as numbered; if only the "
                        "condition differs, set data.options.label_speaking_rows)"
                    )
                trial.raw[modality] = self._read_eeg_npy(path) if modality == "eeg" else path
                trial.source = trial.source or str(path)
        return trials

    @staticmethod
    def _read_labels(path: Path) -> np.ndarray:
        """Label-matrix row (0-9) of every trial."""
        label = np.asarray(_loadmat(path).get("label", np.empty(0)))
        if label.ndim == 2 and label.shape[0] != 10 and label.shape[1] == 10:
            label = label.T
        if label.ndim != 2 or label.shape[0] != 10:
            raise AffectFusionError(f"{path}: expected a [10, trials] one-hot variable 'label', got {label.shape}")
        if not (label.astype(bool).sum(axis=0) == 1).all():
            raise AffectFusionError(f"{path}: 'label' is not one-hot in every trial column")
        return label.argmax(axis=0)

    def _read_eeg_mat(self, path: Path, n_trials: int) -> list[Signal]:
        mat = _loadmat(path)
        names = [self.options.eeg_variable] if self.options.eeg_variable else ["seg1", "seg"]
        name = next((n for n in names if n in mat and np.ndim(mat[n]) == 3), None)
        if name is None:
            found = [k for k in mat if not k.startswith("__")]
            raise AffectFusionError(f"{path}: no 3-D EEG variable {' or '.join(names)} (variables: {found})")
        seg = np.asarray(mat[name], dtype=np.float32)  # [time, channels, trials]
        del mat
        if seg.shape[2] != n_trials:
            raise AffectFusionError(
                f"{path}: '{name}' has shape {seg.shape}, expected [time, channels, {n_trials}] to match the labels"
            )
        seg, sfreq = self._resample(seg, axis=0)
        return [Signal(np.ascontiguousarray(seg[:, :, k].T), sfreq) for k in range(n_trials)]

    def _read_eeg_npy(self, path: Path) -> Signal:
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise AffectFusionError(f"{path}: not a readable .npy array ({e})") from None
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
            raise AffectFusionError(f"{path}: expected a numeric [channels, time] array, got {x.dtype} {x.shape}")
        data, sfreq = self._resample(x.astype(np.float32), axis=1)
        return Signal(np.ascontiguousarray(data), sfreq)

    def _resample(self, x: np.ndarray, axis: int) -> tuple[np.ndarray, float]:
        o = self.options
        if o.eeg_resample_hz is None or o.eeg_resample_hz == o.eeg_sfreq:
            return x, o.eeg_sfreq
        ratio = Fraction(o.eeg_resample_hz / o.eeg_sfreq).limit_denominator(1000)
        y = resample_poly(x, ratio.numerator, ratio.denominator, axis=axis).astype(np.float32)
        return y, o.eeg_sfreq * ratio.numerator / ratio.denominator


def _loadmat(path: Path) -> dict:
    try:
        return loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 (HDF5)
        raise AffectFusionError(
            f"{path}: MATLAB v7.3 file, which scipy cannot read; save it with -v7, or use per-trial .npy files"
        ) from None
    except (OSError, ValueError, TypeError) as e:
        raise AffectFusionError(f"{path}: not a readable .mat file ({e})") from None
