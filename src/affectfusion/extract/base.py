"""The extractor interface: raw media (text, audio file, image, video, signal) -> a feature array.

An extractor is a registered class with a pydantic ``Options`` model. Its *fingerprint* (name,
version, options) identifies the features it makes, so the feature store can cache by
(fingerprint, input content) and record provenance next to the features.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from affectfusion.data.types import Signal
from affectfusion.errors import AffectFusionError
from affectfusion.inputs import MediaKind
from affectfusion.registry import Registry

if TYPE_CHECKING:
    from affectfusion.extract.examples import Example

RawInput = str | Path | Signal
T = TypeVar("T")


class ExtractionError(AffectFusionError):
    """One input could not be turned into features (corrupt file, empty text, no face...)."""


class Extractor(ABC):
    """Base class. Subclasses set ``kind``, ``version`` and ``Options`` and implement ``extract``.

    Heavy models load lazily in :meth:`setup` (once per process), so constructing an extractor
    to compute its fingerprint costs nothing.
    """

    kind: ClassVar[MediaKind]  # the one kind of raw input it reads (the table: affectfusion.inputs)
    version: ClassVar[str] = "1"
    # Packages whose versions are recorded with the features (provenance).
    packages: ClassVar[tuple[str, ...]] = ()
    # A small input this extractor runs on and the feature dimension it gives; every registered extractor sets
    # its own (one line, see affectfusion.extract.examples) and the registry-wide contract test runs it.
    example: ClassVar[Example]
    # True for extractors that read a face out of an image (fer_cnn, face_mesh): serving asks them per input
    # what the face step found (:meth:`extract_with_faces`) and reports it with the prediction.
    reads_faces: ClassVar[bool] = False
    # True for extractors whose model runs on a GPU when there is one (``device`` auto/cuda): the Ray engine
    # gives each of their actors a GPU.
    uses_gpu: ClassVar[bool] = False

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, name: str, options: BaseModel, device: str | None = None, threads: int | None = None) -> None:
        self.name = name
        self.options = options
        # Where and on how many CPU threads models run: how the features are computed, not which
        # features they are, so neither is an option (the cache is shared across devices).
        self.device = device
        self.threads = threads
        self._ready = False

    def setup(self) -> None:  # noqa: B027  (optional hook: most extractors need no setup)
        """Load models; called once before the first extraction in a process."""

    @abstractmethod
    def extract(self, item: RawInput) -> np.ndarray:
        """Features of one input, ``[D]`` or ``[T, D]``; raise :class:`ExtractionError` on bad input."""

    def extract_with_faces(self, item: RawInput) -> tuple[np.ndarray, dict[str, Any] | None]:
        """Features and, for an extractor that :attr:`reads_faces`, what its face step found in this input
        (``found``, ``count``, ``used``, ``box``, ``policy``: :class:`affectfusion.extract.face.FaceReport`),
        so serving reports it without detecting faces a second time. Others: ``extract`` and None."""
        return self.extract(item), None

    def absent(self, error: str) -> bool:
        """Whether this failure only means the modality is absent from that input, as the options say
        (``no_face: missing_modality``): training keeps the row with its other modalities whatever
        ``data.bad_media`` says, and serving predicts from the others. Default: a failure is a failure."""
        return False

    def for_serving(self) -> Extractor:
        """The extractor serving runs on uploads. Default: itself. One whose training inputs were prepared
        beforehand (fer_cnn on face crops, ``detector: none``) returns one that prepares them itself."""
        return self

    def extract_batch(self, items: Sequence[RawInput]) -> list[np.ndarray | ExtractionError]:
        """Features of many inputs; a failing input yields its error instead of stopping the rest.

        Models that gain from batching (text encoders) override this.
        """
        self.ensure_ready()
        out = [guarded(partial(self.extract, item)) for item in items]
        return [r if isinstance(r, ExtractionError) else np.asarray(r, dtype=np.float32) for r in out]

    def ensure_ready(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def describe(self) -> dict[str, Any]:
        """Provenance: what made these features."""
        versions: dict[str, str | None] = {}
        for pkg in self.packages:
            try:
                versions[pkg] = version(pkg)
            except PackageNotFoundError:
                versions[pkg] = None
        return {
            "extractor": self.name,
            "version": self.version,
            "kind": self.kind,
            "options": self.options.model_dump(mode="json"),
            "packages": versions,
        }

    def fingerprint(self) -> str:
        """Identity of the features: extractor, version, options and the versions of the packages that
        compute them, so a library upgrade makes new features instead of mixing old and new ones."""
        d = self.describe()
        key = json.dumps({k: d[k] for k in ("extractor", "version", "options", "packages")}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


EXTRACTORS: Registry[type[Extractor]] = Registry(
    "extractor",
    modules=(  # each registers its extractors when the registry is first read (heavy libraries load later)
        "affectfusion.extract.audio",
        "affectfusion.extract.face.fer",
        "affectfusion.extract.face.mesh",
        "affectfusion.extract.face.pixels",
        "affectfusion.extract.hf_audio",
        "affectfusion.extract.hf_image",
        "affectfusion.extract.signal",
        "affectfusion.extract.text",
        "affectfusion.extract.tokens",
        "affectfusion.extract.video",
        "affectfusion.extract.whisper",
    ),
)


def guarded(extract: Callable[[], T]) -> T | ExtractionError:
    """One input's result, or its :class:`ExtractionError` (a library's own exception turned into one)."""
    try:
        return extract()
    except ExtractionError as e:
        return e
    except Exception as e:  # a library failing on one input must not stop the batch
        return ExtractionError(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def extract_inputs(
    extractor: Extractor, items: Sequence[RawInput], faces: list[dict[str, Any] | None] | None = None
) -> list[np.ndarray | ExtractionError]:
    """The one way features are made, for training (the feature store) and serving (the Predictor).

    Runs the extractor's batch and checks what it returns: a non-empty ``[D]`` or ``[T, D]`` array of
    finite float32 values, else that input's :class:`ExtractionError`. Given a ``faces`` list (serving),
    an extractor that :attr:`~Extractor.reads_faces` runs input by input through
    :meth:`~Extractor.extract_with_faces` and the list receives one face report per input (None for
    other extractors and for an input that failed before its face step; a no-face error's is its ``report``).
    """
    extractor.ensure_ready()
    results: list[np.ndarray | ExtractionError] = []
    if faces is not None and extractor.reads_faces:
        for item in items:
            pair = guarded(partial(extractor.extract_with_faces, item))
            if isinstance(pair, ExtractionError):
                results.append(pair)
                faces.append(getattr(pair, "report", None))
            else:
                results.append(pair[0])
                faces.append(pair[1])
    else:
        results = extractor.extract_batch(items)
        if faces is not None:
            faces.extend([None] * len(items))
    out: list[np.ndarray | ExtractionError] = []
    for result in results:
        if isinstance(result, ExtractionError):
            out.append(result)
            continue
        x = np.asarray(result, dtype=np.float32)
        if x.ndim not in (1, 2) or x.size == 0:
            out.append(ExtractionError(f"{extractor.name} made features of shape {x.shape}; expected [D] or [T, D]"))
        elif not np.isfinite(x).all():
            out.append(ExtractionError(f"{extractor.name} made non-finite features (NaN or infinity)"))
        else:
            out.append(x)
    return out


def content_hash(item: RawInput) -> str:
    """Hash of the input's content (not its name), so a moved file is still a cache hit."""
    h = hashlib.sha256()
    if isinstance(item, Signal):
        h.update(b"signal")
        h.update(np.ascontiguousarray(item.data, dtype=np.float32).tobytes())
        h.update(repr(item.data.shape).encode())
        h.update(repr(float(item.sfreq)).encode())
    elif isinstance(item, Path):
        h.update(b"file")
        try:
            with item.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as e:
            raise ExtractionError(f"cannot read {item}: {e.strerror}") from None
    else:
        h.update(b"text")
        h.update(str(item).encode("utf-8"))
    return h.hexdigest()
