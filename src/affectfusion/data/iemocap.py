"""IEMOCAP in its official release layout: five sessions of dyadic dialogues, one WAV per utterance.

``<root>/Session<k>/sentences/wav/<dialog>/<utterance>.wav``, the categorical label and the
valence / activation / dominance ratings per utterance in ``Session<k>/dialog/EmoEvaluation/*.txt`` and
the words in ``Session<k>/dialog/transcriptions/*.txt``. Each utterance keeps its session (``Ses01``),
speaker (session + the speaking actor's gender, ``Ses01F``: the group, so splits are speaker-disjoint),
gender, dialogue and improvised/scripted type as metadata; ``cv --group session`` is the field's
leave-one-session-out protocol. The label map (``iemocap4`` by default: happy and excited merged)
names the classes; utterances whose label it does not map (frustrated, xxx, ...) are left out by that
protocol's convention, and counted in a one-line note, unless ``keep_unmapped``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import Field

from affectfusion.data.examples.iemocap import iemocap as iemocap_example
from affectfusion.data.label_maps import load_label_map
from affectfusion.data.registry import DATASETS, DatasetAdapter
from affectfusion.data.types import Sample
from affectfusion.errors import AffectFusionError

_EVAL = re.compile(r"^\[([\d.]+) - ([\d.]+)\]\t(\S+)\t(\S+)\t\[([\d.]+), ([\d.]+), ([\d.]+)\]")
_TRANSCRIPT = re.compile(r"^(\S+) \[[\d.]+-[\d.]+\]: ?(.*)$")
_UTTERANCE = re.compile(r"^(Ses\d\d)[FM]_(impro|script)\w*_([FM])\w*$")


@DATASETS.register("iemocap")
class IemocapAdapter(DatasetAdapter):
    """IEMOCAP (release layout): speech + transcript per utterance, 4-class emotion and V/A/D ratings."""

    write_example = staticmethod(iemocap_example)

    class Options(DatasetAdapter.Options):
        sessions: dict[str, list[int]] = Field(
            {"train": [1, 2, 3], "dev": [4], "test": [5]},
            description="split -> session numbers (1-5); cv pools them",
        )
        label_map: str | None = Field(
            "iemocap4", description="label map for `emotion` (a shipped name or a YAML file); null keeps the codes"
        )
        keep_unmapped: bool = Field(False, description="keep utterances the map has no class for, unlabelled")
        audio: str | None = Field("audio", description="modality name of the utterance WAV (null: no audio)")
        text: str | None = Field("text", description="modality name of the transcript (null: no text)")

    options: Options

    def load(self, root: Path | None, split: str) -> list[Sample]:
        assert root is not None  # needs_root: load_dataset checks it
        o = self.options
        if split not in o.sessions:
            raise AffectFusionError(f"iemocap: no split {split!r} in sessions ({', '.join(o.sessions)})")
        mapping = load_label_map(o.label_map) if o.label_map else None
        samples, dropped = [], 0
        for k in o.sessions[split]:
            session = root / f"Session{k}"
            files = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
            if not files:
                raise AffectFusionError(f"iemocap: no {session}/dialog/EmoEvaluation/*.txt (is {root} the release?)")
            for path in files:
                words = _transcripts(session / "dialog" / "transcriptions" / path.name)
                for utt, label, vad in _evaluations(path):
                    emotion = mapping.map(label) if mapping else label
                    if emotion is None and not o.keep_unmapped:
                        dropped += 1
                        continue
                    samples.append(self._sample(session, path.stem, utt, emotion, vad, words.get(utt)))
        if dropped:
            print(
                f"iemocap split {split!r}: {dropped} utterances with labels outside {o.label_map} left out",
                file=sys.stderr,
            )
        return samples

    def _sample(
        self, session: Path, dialog: str, utt: str, emotion: str | None, vad: list[float], words: str | None
    ) -> Sample:
        o = self.options
        match = _UTTERANCE.match(utt)
        if match is None:
            raise AffectFusionError(f"iemocap: {session}/dialog/EmoEvaluation/{dialog}.txt: unexpected turn {utt!r}")
        ses, kind, gender = match.groups()
        raw: dict = {}
        if o.audio:
            raw[o.audio] = session / "sentences" / "wav" / dialog / f"{utt}.wav"
        if o.text and words:
            raw[o.text] = words
        valence, arousal, dominance = vad
        return Sample(
            id=utt,
            features={},
            targets={"emotion": emotion, "valence": valence, "arousal": arousal, "dominance": dominance},
            group=ses + gender,
            source=f"{session.name}/sentences/wav/{dialog}/{utt}.wav",
            raw=raw,
            metadata={
                "session": ses,
                "speaker": ses + gender,
                "gender": {"F": "female", "M": "male"}[gender],
                "dialogue": dialog,
                "type": "improvised" if kind == "impro" else "scripted",
            },
        )


def _evaluations(path: Path) -> list[tuple[str, str, list[float]]]:
    """(utterance, label, [valence, activation, dominance]) of every turn line of an EmoEvaluation file."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _EVAL.match(line)
        if m:
            out.append((m.group(3), m.group(4), [float(m.group(i)) for i in (5, 6, 7)]))
    return out


def _transcripts(path: Path) -> dict[str, str]:
    """Utterance -> words of a transcription file ({} when the file is absent)."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _TRANSCRIPT.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out
