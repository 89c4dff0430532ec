"""The shipped Hebrew n-gram model: it scores, refuses a damaged artifact, and training round-trips."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment
from crisiswatch.modeling.labelled import LabelledText
from crisiswatch.modeling.ngram_training import NgramConfig, fit_ngram_model, read_hebrew_tsv, train_ngram
from crisiswatch.sentiment.ngram import (
    HEBREW_MODEL_DIR,
    MANIFEST_NAME,
    WEIGHTS_NAME,
    NgramArtifactError,
    NgramSentimentModel,
    file_sha256,
    is_ngram_artifact,
)

from ..conftest import SHARED_DATA

HEBREW_DATA = SHARED_DATA / "sentiment" / "hebrew"
NEGATIVE, NEUTRAL, POSITIVE = (SENTIMENT_ORDER.index(s) for s in SENTIMENT_ORDER)

NEGATIVE_HEBREW = [
    "איזו בושה, אתה נשיא גרוע ושקרן",
    "אתה צבוע ושקרן, תתפטר",
    "תתבייש לך, אתה לא מייצג אותנו",
    "איזה שירות גרוע, מאכזב מאוד",
]
POSITIVE_HEBREW = [
    "כל הכבוד, אוהבים אותך ומאחלים לך הצלחה",
    "תודה רבה על הכל, אתה נשיא מדהים",
    "מזל טוב ובהצלחה, גאים בך",
    "תודה רבה, שירות מצוין ואדיב",
]


@pytest.fixture(scope="module")
def shipped() -> NgramSentimentModel:
    return NgramSentimentModel.load(HEBREW_MODEL_DIR)


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    """A copy of the shipped artifact that a test may damage."""
    return Path(shutil.copytree(HEBREW_MODEL_DIR, tmp_path / "model"))


def _rewrite_manifest(directory: Path, **changes: object) -> None:
    path = directory / MANIFEST_NAME
    document = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(document | changes), encoding="utf-8")


def test_shipped_model_scores_probabilities_in_sentiment_order(shipped: NgramSentimentModel) -> None:
    texts = [*NEGATIVE_HEBREW, *POSITIVE_HEBREW, "", "http://example.com @someone", "a" * 5000]
    probabilities = shipped.predict_probabilities(texts)
    assert shipped.name == "hebrew-ngram-1"
    assert shipped.labels == list(SENTIMENT_ORDER)
    assert probabilities.shape == (len(texts), 3)
    assert probabilities.dtype == np.float32
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert shipped.predict_probabilities([]).shape == (0, 3)


@pytest.mark.parametrize(
    ("text", "expected"), [(t, NEGATIVE) for t in NEGATIVE_HEBREW] + [(t, POSITIVE) for t in POSITIVE_HEBREW]
)
def test_shipped_model_reads_clear_hebrew_sentiment(shipped: NgramSentimentModel, text: str, expected: int) -> None:
    probabilities = shipped.predict_probabilities([text])[0]
    assert int(probabilities.argmax()) == expected, (text, probabilities)


def test_only_an_ngram_manifest_is_recognised(tmp_path: Path) -> None:
    assert is_ngram_artifact(HEBREW_MODEL_DIR)
    assert not is_ngram_artifact(HEBREW_MODEL_DIR.parent / "default_model")
    assert not is_ngram_artifact(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    assert not is_ngram_artifact(tmp_path)


def test_load_refuses_weights_that_do_not_match_the_manifest(artifact_copy: Path) -> None:
    weights = artifact_copy / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(NgramArtifactError, match=r"SHA-256 .* differs"):
        NgramSentimentModel.load(artifact_copy)


def test_load_refuses_a_missing_weights_file(artifact_copy: Path) -> None:
    (artifact_copy / WEIGHTS_NAME).unlink()
    with pytest.raises(NgramArtifactError, match=r"weights file .* is missing"):
        NgramSentimentModel.load(artifact_copy)


def test_load_refuses_a_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(NgramArtifactError, match=r"no manifest\.json"):
        NgramSentimentModel.load(tmp_path)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"kind": "transformer"}, "kind"),
        ({"classes": ["negative", "negative", "positive"]}, "classes must be negative, neutral and positive"),
        ({"weights": {"file": "../elsewhere.npz", "sha256": "0" * 64}}, "weights.file"),
        (
            {"vectorisers": [{"name": "char", "analyzer": "char_wb", "ngram_range": [1, 5], "tokenizer": "x"}]},
            "tokenizer: Extra inputs are not permitted",
        ),
    ],
)
def test_load_refuses_a_malformed_manifest_naming_the_field(
    artifact_copy: Path, changes: dict[str, object], complaint: str
) -> None:
    _rewrite_manifest(artifact_copy, **changes)
    with pytest.raises(NgramArtifactError, match=complaint):
        NgramSentimentModel.load(artifact_copy)


def test_load_refuses_pickled_arrays_even_with_a_matching_checksum(artifact_copy: Path) -> None:
    weights = artifact_copy / WEIGHTS_NAME
    with np.load(weights) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["char_terms"] = arrays["char_terms"].astype(object)
    np.savez(weights.with_suffix(""), **arrays)  # np.savez pickles object arrays
    _rewrite_manifest(artifact_copy, weights={"file": WEIGHTS_NAME, "sha256": file_sha256(weights)})
    with pytest.raises(NgramArtifactError, match="pickled or malformed data is refused"):
        NgramSentimentModel.load(artifact_copy)


def test_load_refuses_arrays_that_do_not_fit_together(artifact_copy: Path) -> None:
    weights = artifact_copy / WEIGHTS_NAME
    with np.load(weights) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["coef"] = arrays["coef"][:, :-1]
    np.savez_compressed(weights.with_suffix(""), **arrays)
    _rewrite_manifest(artifact_copy, weights={"file": WEIGHTS_NAME, "sha256": file_sha256(weights)})
    with pytest.raises(NgramArtifactError, match="do not fit 3 classes"):
        NgramSentimentModel.load(artifact_copy)


_WORDS = {
    Sentiment.POSITIVE: ["מצוין", "נהדר", "אוהבת", "תודה", "wonderful"],
    Sentiment.NEGATIVE: ["גרוע", "מגעיל", "שונאת", "בושה", "awful"],
    Sentiment.NEUTRAL: ["שולחן", "רחוב", "אוטובוס", "יום", "table"],
}
_FILLER = ["היה", "זה", "את", "הם", "אתמול", "גם", "כאן"]


def _synthetic(count_per_class: int, seed: int) -> list[LabelledText]:
    """Short texts whose class shows in one or two cue words among filler."""
    rng = random.Random(seed)
    rows = []
    for sentiment, cues in _WORDS.items():
        for _ in range(count_per_class):
            words = rng.sample(_FILLER, 3) + rng.sample(cues, 2)
            rng.shuffle(words)
            rows.append(LabelledText(" ".join(words), sentiment))
    return rows


def test_a_trained_model_round_trips_through_its_artifact(tmp_path: Path) -> None:
    rows = _synthetic(20, seed=1)
    model = fit_ngram_model(rows, NgramConfig(min_df=1), "synthetic", {"note": "test"})
    model.save(tmp_path / "a")
    loaded = NgramSentimentModel.load(tmp_path / "a")
    probe = [row.text for row in _synthetic(5, seed=2)] + ["", "@user http"]
    assert np.array_equal(model.predict_probabilities(probe), loaded.predict_probabilities(probe))
    assert loaded.name == "synthetic" and loaded.training == {"note": "test"}
    fit_ngram_model(rows, NgramConfig(min_df=1), "synthetic", {"note": "test"}).save(tmp_path / "b")
    for name in (WEIGHTS_NAME, MANIFEST_NAME):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _write_tsv(path: Path, rows: list[LabelledText]) -> Path:
    code = {Sentiment.POSITIVE: 0, Sentiment.NEGATIVE: 1, Sentiment.NEUTRAL: 2}
    lines = ["comment\tlabel", *(f"{row.text}\t{code[row.label]}" for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_training_command_writes_a_loadable_artifact_and_card(tmp_path: Path) -> None:
    train = _write_tsv(tmp_path / "train.tsv", _synthetic(30, seed=3))
    dev = _write_tsv(tmp_path / "dev.tsv", _synthetic(6, seed=4))
    test = _write_tsv(tmp_path / "test.tsv", _synthetic(6, seed=5))
    app = typer.Typer()
    app.command()(train_ngram)
    out = tmp_path / "out"
    arguments = ["--train", str(train), "--dev", str(dev), "--test", str(test), "--out", str(out), "--folds", "3"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["training"]["data"]["train"]["texts"] == 90
    assert manifest["training"]["protocol"]["shipped_fit"] == "train + dev"
    assert manifest["training"]["test"]["accuracy"] == 100.0
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "Test, scored once" in card and "3-fold stratified cross-validation" in card
    model = NgramSentimentModel.load(out)
    assert model.predict_probabilities(["מצוין ונהדר", "גרוע ומגעיל"]).argmax(axis=1).tolist() == [POSITIVE, NEGATIVE]


needs_data = pytest.mark.skipif(not HEBREW_DATA.is_dir(), reason=f"no Hebrew sentiment data at {HEBREW_DATA}")


@needs_data
def test_hebrew_files_read_with_their_label_scheme() -> None:
    rows = read_hebrew_tsv(HEBREW_DATA / "train.tsv")
    counts = {s: sum(1 for r in rows if r.label is s) for s in SENTIMENT_ORDER}
    assert counts == {Sentiment.POSITIVE: 4017, Sentiment.NEGATIVE: 1744, Sentiment.NEUTRAL: 165}
    assert rows[1] == LabelledText("כל הכבוד והמון בהצלחה", Sentiment.POSITIVE)


@needs_data
def test_shipped_model_was_trained_on_these_files() -> None:
    recorded = json.loads((HEBREW_MODEL_DIR / MANIFEST_NAME).read_text(encoding="utf-8"))["training"]["data"]
    for role in ("train", "dev", "test"):
        info = recorded[role]
        assert file_sha256(HEBREW_DATA / info["file"]) == info["sha256"], role
