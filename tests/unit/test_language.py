"""Language identification of mentions: script first, then the bundled model; ``und`` when a text cannot tell."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crisiswatch.analysis.languages import score_identification, shared_samples
from crisiswatch.cli import app
from crisiswatch.ingest.language import UNDETERMINED, detect_language
from crisiswatch.ingest.records import language_of

SENTIMENT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "sentiment"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Acme Air lost my bag again, third time this year", "en"),
        ("הטיסה של Acme Air בוטלה שוב ואף אחד לא עונה", "he"),
        ("@AcmeAir אקמי אייר איבדו לי את המזוודה https://t.co/abc #AcmeAir", "he"),
        ("Voltcell est en panne depuis ce matin", "fr"),
        ("شركة الطيران فقدت حقيبتي", "ar"),
        ("@AcmeAir https://t.co/abc #fail", UNDETERMINED),
        ("ok", UNDETERMINED),
        ("Acme Air \ud800 lost my bag", "en"),
    ],
)
def test_a_mention_is_the_language_of_its_words_not_of_its_handles_and_links(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_the_sources_tag_is_used_only_when_the_text_cannot_tell() -> None:
    assert language_of("Acme Air lost my bag again", "he") == "en", "the text wins over the account's language"
    assert language_of("@AcmeAir https://t.co/x", "iw") == "he", "X's legacy code for Hebrew"
    assert language_of("@AcmeAir https://t.co/x", "pt-BR") == "pt"
    assert language_of("@AcmeAir https://t.co/x", "<script>") == UNDETERMINED
    assert language_of("@AcmeAir https://t.co/x", None) == UNDETERMINED


@pytest.mark.skipif(not SENTIMENT_DATA.exists(), reason="the shared sentiment sets are not beside the project")
def test_the_shared_english_and_hebrew_sets_are_told_apart() -> None:
    scores = score_identification(shared_samples(SENTIMENT_DATA, limit=1000))
    assert scores["en"].correct >= 0.97 and scores["he"].correct >= 0.99
    result = CliRunner().invoke(app, ["eval-language", "--data", str(SENTIMENT_DATA), "--limit", "50"])
    assert result.exit_code == 0 and "he" in result.output and "undetermined" in result.output


@pytest.mark.parametrize(
    ("text", "brand_languages", "language"),
    [
        ("HOO BOY THAT WESTWORLD FINALE", ("en",), "en"),
        ("@AcmeAir lol", ("en",), "en"),
        ("Acme Air lost my bag again", ("en",), "en"),
        ("@AcmeAir servicio horrible, me cobraron dos veces y nadie responde", ("en",), "es"),
        ("Le service client d'Acme Air est vraiment nul, trois heures d'attente", ("en",), "fr"),
        ("הטיסה של Acme Air בוטלה שוב", ("en",), "he"),
        ("HOO BOY THAT WESTWORLD FINALE", (), "it"),
        ("Galil Mobile ok", ("he", "en"), "en"),
    ],
)
def test_short_or_unsure_posts_lean_on_the_brands_languages(
    text: str, brand_languages: tuple[str, ...], language: str
) -> None:
    """An English brand's short English post is never Italian; a sure, longer Spanish or French post stays itself."""
    assert language_of(text, None, brand_languages) == language


def test_brands_name_their_customers_languages_and_the_listener_reads_posts_with_them() -> None:
    from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, BrandCatalog
    from crisiswatch.ingest.records import to_mentions

    catalog = BrandCatalog.from_file(DEFAULT_BRANDS_FILE)
    assert catalog.brands["acme-air"].languages == ("en",) and catalog.brands["galil-mobile"].languages == ("he",)
    record = {"id": "1", "text": "HOO BOY THAT ACME AIR FINALE", "created_at": "2026-01-01T00:00:00Z"}
    [mention] = to_mentions(record, catalog)
    assert mention.lang == "en"
