"""Language routing: which model scores a mention, what happens to a language no model covers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from crisiswatch.contracts.schemas import Mention, Sentiment, SentimentScores
from crisiswatch.sentiment.loading import DEFAULT_ROUTES, ModelSettings, load_models
from crisiswatch.sentiment.ngram import HEBREW_MODEL_DIR, NgramSentimentModel
from crisiswatch.sentiment.routing import LanguageModels, parse_routes, read_routes_file, score_routed

from ..conftest import Pipeline, metric_value, produce


class FixedScorer:
    """A stand-in model that says the same thing about every text (routing is what is under test)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def predict(self, texts: Sequence[str], max_batch_size: int = 64) -> list[SentimentScores]:
        return [SentimentScores(negative=1.0, neutral=0.0, positive=0.0) for _ in texts]

    def describe(self) -> dict[str, str]:
        return {"model": self.name}


def test_a_mapping_takes_language_codes_and_a_fallback_and_refuses_the_rest() -> None:
    assert parse_routes({"EN": "default", "pt": "x", "*": "y"}) == {"en": "default", "pt": "x", "*": "y"}
    for bad, says in (
        ({"english": "default"}, "not a primary language code"),
        ({"pt-BR": "x"}, "regional tags are read as their language"),
        ({"en": "  "}, "names no model"),
        ({"en": "a", "EN": "b"}, "mapped twice"),
        ({}, "empty"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_routes(bad)


def test_the_mapping_comes_from_json_in_the_environment_or_a_toml_file(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLASSIFIER_MODELS", '{"en": "default", "*": "hebrew"}')
    assert ModelSettings().routes() == {"en": "default", "*": "hebrew"}
    monkeypatch.setenv("CLASSIFIER_MODELS", '{"english": "default"}')
    with pytest.raises(ValidationError, match="not a primary language code"):
        ModelSettings()
    monkeypatch.delenv("CLASSIFIER_MODELS")
    assert ModelSettings().routes() == DEFAULT_ROUTES
    mapping = tmp_path / "models.toml"
    mapping.write_text('[models]\nen = "default"\nhe = "hebrew"\n"*" = "default"\n')
    monkeypatch.setenv("CLASSIFIER_MODELS_FILE", str(mapping))
    assert ModelSettings().routes() == {"en": "default", "he": "hebrew", "*": "default"}
    mapping.write_text("[models]\nen = 3\n")
    with pytest.raises(ValueError, match='language = "model"'):
        read_routes_file(mapping)


def test_each_language_goes_to_its_model_a_region_to_its_language_and_the_rest_to_the_fallback() -> None:
    english, hebrew, anything = FixedScorer("en-model"), FixedScorer("he-model"), FixedScorer("any-model")
    routed = LanguageModels({"en": english, "und": english, "he": hebrew}, fallback=anything)
    for tag in ("he", "he-IL", "iw", " HE_il "):
        assert routed.scorer_for(tag) is hebrew, tag
    assert routed.scorer_for("en-GB") is english
    assert routed.scorer_for("fr") is anything
    assert routed.language_label("en-gb") == "en" and routed.language_label("fr") == "other"
    for odd in ("", "-", "\u202e", "x" * 16, "12", "ע"):
        assert routed.language_label(odd) in {"und", "other"}, "odd tags never become a new metric label"
    with pytest.raises(ValueError, match="both called 'en-model'"):
        LanguageModels({"en": english, "fr": FixedScorer("en-model")})


def test_a_pass_is_scored_one_model_at_a_time_and_unmapped_languages_stay_unscored() -> None:
    calls: list[tuple[str, list[str]]] = []

    class Recording(FixedScorer):
        def predict(self, texts: Sequence[str], max_batch_size: int = 64) -> list[SentimentScores]:
            calls.append((self.name, list(texts)))
            return super().predict(texts, max_batch_size)

    models = LanguageModels({"en": Recording("en-model"), "und": Recording("en-model2"), "he": Recording("he-model")})
    routed = score_routed(["a", "ב", "c", "d", "e"], ["en", "he", "fr", "en-US", "und"], models, 64)
    assert routed.models == ["en-model", "he-model", None, "en-model", "en-model2"]
    assert [s is None for s in routed.scores] == [False, False, True, False, False]
    assert sorted(calls) == [("en-model", ["a", "d"]), ("en-model2", ["e"]), ("he-model", ["ב"])]


def test_the_default_mapping_loads_the_english_and_the_hebrew_model_offline() -> None:
    models = load_models(ModelSettings(device="cpu", dtype="fp32", engine="torch"))
    english, hebrew = models.scorer_for("en"), models.scorer_for("he")
    assert english is not None and hebrew is not None
    assert hebrew.name == NgramSentimentModel.load(HEBREW_MODEL_DIR).name != english.name
    assert models.scorer_for("und") is english
    multilingual = models.scorer_for("fr")
    assert multilingual is not None and multilingual.name == "e5-multilingual-1", "every other language is scored"
    assert models.scorer_for("ar") is multilingual
    [negative, positive] = hebrew.predict(["שירות מחפיר, בושה וחרפה, נמאס מכם", "כל הכבוד ותודה רבה, אלופים"])
    assert (negative.label, positive.label) == (Sentiment.NEGATIVE, Sentiment.POSITIVE)


def test_a_mapping_naming_a_model_that_does_not_exist_stops_the_classifier(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_models(ModelSettings(models={"en": str(tmp_path / "no-such-model")}))


@pytest.mark.pipeline
def test_the_classifier_routes_by_language_and_counts_what_it_leaves_unscored(pipeline_factory) -> None:
    pipeline: Pipeline = pipeline_factory({"CLASSIFIER_MAX_WAIT_MS": "5"})
    pipeline.start("classifier", "run")
    now = datetime.now(UTC) - timedelta(minutes=1)
    texts = {
        "en": "@NimbusBank your app has been down all day, useless",
        "he": "האפליקציה של נימבוס בנק לא עובדת, בושה וחרפה",
        "fr": "Nimbus Bank est en panne depuis ce matin",
        "und": "Nimbus Bank ???",
        "zz": "🙂🙂🙂",
    }
    mentions = [
        Mention(id=f"m-{lang}", source="test", brand="nimbus-bank", text=text, lang=lang, created_at=now)
        for lang, text in texts.items()
    ]
    produce(pipeline, pipeline.topics.raw, mentions)
    pipeline.wait_for_metric("classifier", "crisiswatch_classifier_mentions_total", 'outcome="unscored"', 1)
    hebrew_model = NgramSentimentModel.load(HEBREW_MODEL_DIR).name
    scored = {m["lang"]: m for m in map(json.loads, pipeline.read(pipeline.topics.scored, 4))}
    assert sorted(scored) == ["en", "fr", "he", "und"], "emoji only has nothing to read: it alone is not scored"
    assert scored["he"]["model"] == hebrew_model and scored["he"]["label"] == "negative"
    assert scored["en"]["model"] == scored["und"]["model"] != hebrew_model
    assert scored["fr"]["model"] == "e5-multilingual-1", "a language without its own model goes to the multilingual one"
    exposed = pipeline.metrics("classifier")
    assert metric_value(exposed, "crisiswatch_classifier_language_mentions_total", 'language="other",model="none"') == 1
    assert (
        metric_value(exposed, "crisiswatch_classifier_language_mentions_total", f'language="he",model="{hebrew_model}"')
        == 1
    )
    assert metric_value(exposed, "crisiswatch_classifier_model_info", 'language="he"') == 1
    assert not pipeline.read(pipeline.topics.dlq, timeout=3), "an unscored language is not an error"
