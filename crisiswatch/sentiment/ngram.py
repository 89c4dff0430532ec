"""A character and word n-gram sentiment model: TF-IDF features and a softmax linear layer, on the CPU.

For languages no shippable transformer reads (Hebrew first): thousands of
texts a second on one core, a few megabytes on disk, and only scikit-learn and
numpy to run. Character n-grams inside word boundaries carry most of the
signal: Hebrew glues prepositions, articles and conjunctions onto the word
(``ו``, ``ה``, ``ב``, ``ל``, ``מ``, ``ש``), so one stem appears in many
surface forms that share their inner n-grams.

The artifact is plain data, never pickle: ``manifest.json`` (name, classes,
the vectorisers' parameters, provenance and figures, and the SHA-256 of the
weights) and ``weights.npz`` (vocabularies, idf, coefficients, intercepts),
read with ``allow_pickle=False``. The vectorisers and the classifier are
rebuilt from those at load, so loading runs no code from the artifact. The
checksum refuses a truncated, corrupted or mismatched weights file; it is not
a signature (whoever can write the manifest can rewrite it).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment

from .textprep import normalise_for_model

ARTIFACT_KIND = "ngram-linear"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.npz"
HEBREW_MODEL_DIR = Path(__file__).resolve().parent / "hebrew_model"
"""The shipped Hebrew model (trained by ``crisiswatch model train-ngram``; see its MODEL_CARD.md)."""

TEXT_NORMALISATION = "normalise_for_model: escaped unicode decoded, handles->@user, urls->http, whitespace collapsed"
_ARRAY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class NgramArtifactError(ValueError):
    """An n-gram artifact directory that is missing, malformed or inconsistent; the message says which file and why."""


class VectoriserSpec(BaseModel):
    """The parameters one TF-IDF vectoriser is built from, in training and again at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_ARRAY_NAME.pattern, description="prefix of this vectoriser's arrays in weights.npz")
    analyzer: Literal["char_wb", "char", "word"]
    ngram_range: tuple[int, int]
    min_df: int = Field(default=1, ge=1, description="used in training only; recorded for the model card")
    lowercase: bool = True
    sublinear_tf: bool = True
    smooth_idf: bool = True
    norm: Literal["l1", "l2"] | None = "l2"
    token_pattern: str = r"(?u)\b\w\w+\b"

    @field_validator("ngram_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 1 <= low <= high <= 10:
            raise ValueError(f"ngram_range {value} must satisfy 1 <= low <= high <= 10")
        return value

    def build(self, vocabulary: Mapping[str, int] | None = None) -> TfidfVectorizer:
        """An unfitted vectoriser with these parameters, or one bound to a fixed ``vocabulary`` (at load)."""
        return TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=self.ngram_range,
            min_df=self.min_df if vocabulary is None else 1,
            lowercase=self.lowercase,
            sublinear_tf=self.sublinear_tf,
            smooth_idf=self.smooth_idf,
            norm=self.norm,
            token_pattern=self.token_pattern if self.analyzer == "word" else None,
            vocabulary=vocabulary,
            dtype=np.float64,
        )


class WeightsReference(BaseModel):
    """Which file in the artifact directory holds the arrays, and its checksum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.npz$", description="a plain file name inside the directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class NgramManifest(BaseModel):
    """``manifest.json``: everything needed to rebuild the model besides the arrays, plus its provenance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ngram-linear"]
    format_version: Literal[1]
    name: str = Field(min_length=1, max_length=100)
    classes: tuple[Sentiment, ...] = Field(description="the classifier's output rows, in order")
    text_normalisation: str
    vectorisers: tuple[VectoriserSpec, ...] = Field(min_length=1)
    weights: WeightsReference
    training: dict[str, Any] = Field(default_factory=dict, description="data, protocol and figures; not read at load")

    @model_validator(mode="after")
    def _consistent(self) -> NgramManifest:
        if sorted(self.classes) != sorted(SENTIMENT_ORDER):
            raise ValueError(f"classes must be negative, neutral and positive once each, got {list(self.classes)}")
        names = [v.name for v in self.vectorisers]
        if len(set(names)) != len(names):
            raise ValueError(f"vectoriser names must be unique, got {names}")
        return self


def declared_kind(directory: Path) -> str | None:
    """The ``kind`` that ``directory``'s ``manifest.json`` declares; ``None`` without a readable one."""
    try:
        document = json.loads((Path(directory) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = document.get("kind") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) else None


def is_ngram_artifact(directory: Path) -> bool:
    """Whether ``directory`` holds a manifest that declares an n-gram artifact (its contents are checked by load)."""
    return declared_kind(directory) == ARTIFACT_KIND


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class NgramSentimentModel:
    """Fitted TF-IDF vectorisers whose features, side by side, feed a multinomial logistic regression."""

    def __init__(
        self,
        name: str,
        specs: Sequence[VectoriserSpec],
        vectorisers: Sequence[TfidfVectorizer],
        classifier: LogisticRegression,
        training: Mapping[str, Any] | None = None,
    ) -> None:
        """Wrap fitted parts; ``classifier.classes_`` are sentiment names (``"negative"``...)."""
        if len(specs) != len(vectorisers):
            raise ValueError(f"{len(specs)} vectoriser specs but {len(vectorisers)} vectorisers")
        self.name = name
        self.labels: list[Sentiment] = list(SENTIMENT_ORDER)
        self.specs = tuple(specs)
        self.vectorisers = tuple(vectorisers)
        self.classifier = classifier
        self.training: dict[str, Any] = dict(training or {})
        self.classes = tuple(Sentiment(str(c)) for c in classifier.classes_)
        self._columns = np.array([self.classes.index(s) for s in SENTIMENT_ORDER])

    def features(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The model's input rows: each vectoriser's features of the normalised texts, side by side."""
        prepared = [normalise_for_model(text) for text in texts]
        blocks = [vectoriser.transform(prepared) for vectoriser in self.vectorisers]
        return sp.hstack(blocks, format="csr")

    def predict_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Negative/neutral/positive probabilities (``SENTIMENT_ORDER``), shape (n, 3), float32, rows summing to 1."""
        if len(texts) == 0:
            return np.zeros((0, len(SENTIMENT_ORDER)), dtype=np.float32)
        probabilities = self.classifier.predict_proba(self.features(texts))[:, self._columns]
        return probabilities.astype(np.float32)

    def manifest(self, weights_sha256: str) -> NgramManifest:
        """The manifest describing this model, for weights whose file hashes to ``weights_sha256``."""
        return NgramManifest(
            kind=ARTIFACT_KIND,
            format_version=FORMAT_VERSION,
            name=self.name,
            classes=self.classes,
            text_normalisation=TEXT_NORMALISATION,
            vectorisers=self.specs,
            weights=WeightsReference(file=WEIGHTS_NAME, sha256=weights_sha256),
            training=self.training,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The learnt arrays by name: each vectoriser's terms (in column order) and idf, then the linear layer."""
        arrays: dict[str, np.ndarray] = {}
        for spec, vectoriser in zip(self.specs, self.vectorisers, strict=True):
            arrays[f"{spec.name}_terms"] = np.asarray(vectoriser.get_feature_names_out().tolist(), dtype=np.str_)
            arrays[f"{spec.name}_idf"] = np.asarray(vectoriser.idf_, dtype=np.float64)
        arrays["coef"] = np.asarray(self.classifier.coef_, dtype=np.float64)
        arrays["intercept"] = np.asarray(self.classifier.intercept_, dtype=np.float64)
        return arrays

    def save(self, directory: Path) -> Path:
        """Write ``weights.npz`` and ``manifest.json`` into ``directory`` (created if needed); returns the manifest.

        The same model always gives the same bytes (fixed zip timestamps, sorted
        JSON keys), so retraining on the same data changes nothing in git.
        """
        directory.mkdir(parents=True, exist_ok=True)
        weights = directory / WEIGHTS_NAME
        write_npz(weights, self.arrays())
        manifest_path = directory / MANIFEST_NAME
        document = self.manifest(file_sha256(weights)).model_dump(mode="json")
        manifest_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return manifest_path

    @classmethod
    def load(cls, directory: Path) -> NgramSentimentModel:
        """Rebuild a model from an artifact directory; raises :class:`NgramArtifactError` saying what is wrong."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        weights = directory / manifest.weights.file
        if not weights.is_file():
            raise NgramArtifactError(f"{weights}: the weights file named by {MANIFEST_NAME} is missing")
        found = file_sha256(weights)
        if found != manifest.weights.sha256:
            raise NgramArtifactError(
                f"{weights}: SHA-256 {found} differs from {manifest.weights.sha256} in {MANIFEST_NAME}; "
                "the file is corrupted or does not belong to this manifest"
            )
        arrays = read_npz(weights)
        vectorisers = [_vectoriser(spec, arrays, weights) for spec in manifest.vectorisers]
        width = sum(len(v.vocabulary_) for v in vectorisers)
        classifier = _classifier(manifest.classes, arrays, width, weights)
        return cls(manifest.name, manifest.vectorisers, vectorisers, classifier, manifest.training)


def read_manifest(directory: Path) -> NgramManifest:
    """The directory's validated manifest; :class:`NgramArtifactError` when it is absent or malformed."""
    path = Path(directory) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NgramArtifactError(f"{path}: no {MANIFEST_NAME}; {directory} is not an n-gram model artifact") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NgramArtifactError(f"{path}: cannot read: {error}") from error
    try:
        return NgramManifest.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}"
            for e in error.errors(include_input=False)
        )
        raise NgramArtifactError(f"{path}: not a valid {ARTIFACT_KIND} manifest: {problems}") from None


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a deflated ``.npz`` with fixed member timestamps, so equal arrays always give equal bytes.

    ``np.savez_compressed`` stamps each member with the current time; this
    writes the same ``.npy`` members in the same zip layout without it.
    """
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[key]), allow_pickle=False)
    partial.replace(path)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, refusing object (pickled) arrays; :class:`NgramArtifactError` when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise NgramArtifactError(
            f"{path}: cannot read the arrays (pickled or malformed data is refused): {error}"
        ) from None


def _array(arrays: Mapping[str, np.ndarray], key: str, kind: str, ndim: int, source: Path) -> np.ndarray:
    """``arrays[key]``, checked to exist and to have numpy ``kind`` ('U' text, 'f' float) and ``ndim`` dimensions."""
    if key not in arrays:
        raise NgramArtifactError(f"{source}: array {key!r} is missing")
    value = arrays[key]
    if value.dtype.kind != kind or value.ndim != ndim:
        raise NgramArtifactError(f"{source}: array {key!r} is {value.dtype}[{value.ndim}-d], expected kind {kind!r}")
    if kind == "f" and not np.isfinite(value).all():
        raise NgramArtifactError(f"{source}: array {key!r} holds a NaN or infinity")
    return value


def _vectoriser(spec: VectoriserSpec, arrays: Mapping[str, np.ndarray], source: Path) -> TfidfVectorizer:
    """The fitted vectoriser ``spec`` describes, from its terms and idf arrays."""
    terms = _array(arrays, f"{spec.name}_terms", "U", 1, source)
    idf = _array(arrays, f"{spec.name}_idf", "f", 1, source)
    vocabulary = {str(term): index for index, term in enumerate(terms.tolist())}
    if len(vocabulary) != len(terms) or len(terms) == 0:
        raise NgramArtifactError(f"{source}: vectoriser {spec.name!r} has an empty or repeated vocabulary")
    if len(idf) != len(terms):
        raise NgramArtifactError(f"{source}: vectoriser {spec.name!r} has {len(terms)} terms but {len(idf)} idf values")
    vectoriser = spec.build(vocabulary)
    vectoriser.idf_ = idf
    return vectoriser


def _classifier(
    classes: Sequence[Sentiment], arrays: Mapping[str, np.ndarray], width: int, source: Path
) -> LogisticRegression:
    """A fitted multinomial logistic regression from its coefficient and intercept arrays."""
    coef = _array(arrays, "coef", "f", 2, source)
    intercept = _array(arrays, "intercept", "f", 1, source)
    if coef.shape != (len(classes), width) or intercept.shape != (len(classes),):
        raise NgramArtifactError(
            f"{source}: coef {coef.shape} and intercept {intercept.shape} do not fit "
            f"{len(classes)} classes over {width} features"
        )
    classifier = LogisticRegression()
    classifier.classes_ = np.array([c.value for c in classes])
    classifier.coef_ = coef
    classifier.intercept_ = intercept
    classifier.n_features_in_ = width
    return classifier
