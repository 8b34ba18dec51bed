"""A tiny IEMOCAP in the official release layout (the corpus is licensed on request).

``Session<k>/sentences/wav/<dialog>/<utterance>.wav``, ``Session<k>/dialog/EmoEvaluation/<dialog>.txt``
(one ``[start - end]<TAB>utterance<TAB>label<TAB>[V, A, D]`` line per utterance, followed by the raters'
lines, as in the release) and ``Session<k>/dialog/transcriptions/<dialog>.txt``
(``utterance [start-end]: text``). Labels cover the four classes of the usual protocol plus excited,
frustrated and ``xxx`` (no agreement), so the label map's merging and dropping are exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectfusion.data.examples import ExampleSpec
from affectfusion.data.examples.media import write_wav

# label -> (tone of the synthetic voice, valence, activation, words)
LABELS = {
    "neu": (0, 3.0, 2.5, "I am going to the office now."),
    "hap": (1, 4.5, 3.5, "This is wonderful news, I love it!"),
    "exc": (1, 4.0, 4.5, "We won, we actually won!"),
    "sad": (0, 1.5, 1.5, "I miss her so much."),
    "ang": (2, 1.5, 4.5, "Get out of my way, now!"),
    "fru": (2, 2.0, 3.5, "Why does this never work?"),
    "xxx": (0, 3.0, 3.0, "Well, I guess so."),
}


def make_iemocap(root: Path, sessions: int = 5, per_speaker: int = 6, seed: int = 0) -> Path:
    """Write sessions 1..``sessions``, one improvised dialog each, ``per_speaker`` turns of each speaker."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    labels = list(LABELS)
    for k in range(1, sessions + 1):
        dialog = f"Ses{k:02d}F_impro01"
        base = root / f"Session{k}"
        evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        transcript = []
        t = 1.0
        for i in range(2 * per_speaker):
            speaker = "FM"[i % 2]
            utt = f"{dialog}_{speaker}{i // 2:03d}"
            label = labels[(i + k) % len(labels)]
            tone, valence, arousal, words = LABELS[label]
            write_wav(base / "sentences" / "wav" / dialog / f"{utt}.wav", tone, rng, seconds=0.4)
            end = t + 0.4
            vad = f"[{valence:.4f}, {arousal:.4f}, {2.5 + rng.uniform(-1, 1):.4f}]"
            evaluation += [f"[{t:.4f} - {end:.4f}]\t{utt}\t{label}\t{vad}", f"C-E1:\t{label};\t()", ""]
            transcript.append(f"{utt} [{t:08.4f}-{end:08.4f}]: {words}")
            t = end + 0.2
        (base / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (base / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(evaluation) + "\n")
        (base / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
        (base / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(transcript) + "\n")
    return root


def iemocap(root: Path) -> ExampleSpec:
    """Two sessions; the train split is session 1."""
    make_iemocap(root, sessions=2, per_speaker=4)
    return ExampleSpec("train", ("emotion", "valence"), {"sessions": {"train": [1], "test": [2]}})
