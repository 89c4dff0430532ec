"""The themes' sentence encoders and their start-up: the shipped e5 encoder (int8 on ONNX Runtime, no torch) reads
Hebrew and English alike, the alerter warms it in the background, a failed load or grouping costs only the
meaning or the themes, never the alert, and the held-out evaluation chooses each set's knobs without it."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from crisiswatch.alerter import alert_themes
from crisiswatch.alerter.replies import load_templates
from crisiswatch.analysis.theme_evaluation import (
    KEYWORDS,
    KMEANS,
    OURS,
    CachedEncoder,
    default_templates,
    grid_settings,
    held_out_figures,
)
from crisiswatch.evaluation_data.theme_set import theme_rows
from crisiswatch.themes import encoding
from crisiswatch.themes.clustering import anchors_from_templates
from crisiswatch.themes.encoding import (
    RememberingEncoder,
    SentenceEncoder,
    default_encoder,
    encoder_name_for,
    installed_encoders,
    shipped_encoder,
    warm_encoders,
)

from ..factories import composed, incident, sample_mentions

pytestmark = pytest.mark.skipif(not encoding.e5_installed(), reason="the e5 encoder's packages are not installed")

LOST = ["my suitcase never arrived", "they lost my luggage on the flight", "no sign of my bag at the carousel"]
CANCELLED = ["my flight was cancelled", "they cancelled our flight home", "another cancellation, stuck at the gate"]


@pytest.fixture(scope="module")
def e5() -> SentenceEncoder:
    shipped = shipped_encoder("e5")
    assert isinstance(shipped, RememberingEncoder) and isinstance(shipped.encoder, SentenceEncoder)
    return shipped.encoder


def test_the_multilingual_encoder_is_the_default() -> None:
    assert installed_encoders()[0] == "e5"
    shipped = default_encoder()
    assert isinstance(shipped, RememberingEncoder) and isinstance(shipped.encoder, SentenceEncoder)


@pytest.mark.slow
def test_both_encoders_load_and_read_where_torch_cannot_be_imported() -> None:
    """As in the alerter image: torch and transformers cannot be imported; both encoders still load and read."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = sys.modules["transformers"] = None
        from crisiswatch.themes.encoding import warm_encoders, shipped_encoder
        print(*warm_encoders(), *shipped_encoder("e5")(["my bag was lost"]).shape)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [*installed_encoders(), "1", "384"]


def test_the_e5_encoder_reads_hebrew_and_english_alike(e5: SentenceEncoder) -> None:
    vectors = e5(["my suitcase was lost", "המזוודה שלי אבדה", "my flight was cancelled", "הטיסה שלי בוטלה", ""])

    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    lost_en, lost_he, cancelled_en, cancelled_he = vectors[:4]
    assert lost_he @ lost_en > lost_he @ cancelled_en, "a Hebrew lost bag is nearer the English lost bag"
    assert cancelled_he @ cancelled_en > cancelled_he @ lost_en


def test_the_e5_encoder_reads_a_long_text_by_its_opening(e5: SentenceEncoder) -> None:
    opening = "they lost my luggage and nobody answers the phone. "
    long = opening + "word " * 2000

    assert len(e5.model.tokenise([long])[0]) == e5.model.max_length
    assert e5([long]) @ e5([opening])[0] > 0.8


def test_the_shipped_encoder_remembers_texts_so_an_update_encodes_only_its_new_posts(e5: SentenceEncoder) -> None:
    seen: list[str] = []

    def counted(texts: Any) -> np.ndarray:
        seen.extend(texts)
        return e5(texts)

    remembering = RememberingEncoder(counted, capacity=4)
    first = remembering(LOST + LOST[:1])
    again = remembering([CANCELLED[0], *LOST])

    assert seen == [*LOST, CANCELLED[0]], "each text encoded once; a repeated text within a call too"
    assert np.allclose(again[1:], first[:3]) and np.allclose(again[0], e5([CANCELLED[0]])[0])
    remembering([CANCELLED[1]])  # a fifth text: the least recently used one is forgotten
    assert list(remembering._vectors) == [*LOST[1:], CANCELLED[0], CANCELLED[1]]


def test_the_alerter_warms_the_encoder_in_the_background() -> None:
    thread = alert_themes.warm_encoder()

    assert thread.daemon
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert default_encoder() is not None


@pytest.mark.skipif(not encoding.minilm_installed(), reason="the MiniLM encoder's packages are not installed")
def test_english_posts_are_read_by_the_english_encoder_and_any_other_or_a_mix_by_the_multilingual_one() -> None:
    assert encoder_name_for(["en"] * 9 + ["und"] * 5) == "minilm", "unidentified posts do not count"
    assert encoder_name_for(["en-GB"] * 9 + ["es"]) == "minilm"
    assert encoder_name_for(["en"] * 8 + ["he"] * 2) == "e5", "a mixed storm needs the encoder that reads both"
    assert encoder_name_for(["he"] * 10) == "e5"
    assert encoder_name_for(["und"] * 10) == "e5", "nothing identified: the encoder that reads every language"

    english = shipped_encoder("minilm")
    assert isinstance(english, RememberingEncoder)
    english.forget()
    storm = _storm()
    posts = [post.model_copy(update={"lang": "en"}) for post in storm.theme_posts]
    themes = asyncio.run(alert_themes.themes_for(storm.model_copy(update={"theme_posts": posts}), load_templates()))
    assert themes is not None and len(themes.themes) >= 2
    assert any("suitcase never arrived" in text for text in english._vectors), "the English encoder read the storm"


@pytest.mark.skipif(not encoding.minilm_installed(), reason="the MiniLM encoder's packages are not installed")
def test_english_posts_fall_back_to_the_multilingual_encoder_when_the_english_one_cannot_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def english_broken(name: str) -> Any:
        raise OSError(f"{name}: model file unreadable")

    monkeypatch.setattr(encoding, "_LOADED", {"e5": shipped_encoder("e5")})  # e5 loaded, MiniLM not yet
    monkeypatch.setattr(encoding, "load_encoder", english_broken)
    chosen = encoding.encoder_for(["en"] * 10)
    assert chosen is not None and chosen[0] == "e5"
    assert encoding._LOADED["minilm"] is None, "a failed load is remembered, not retried on every alert"


def _storm() -> Any:
    posts = sample_mentions([*(LOST * 3), *(CANCELLED * 3)])
    posts = [p.model_copy(update={"text": f"{p.text} #{i}"}) for i, p in enumerate(posts)]
    return incident(theme_posts=posts, sample_mentions=posts[:3])


def test_an_encoder_that_cannot_load_costs_the_meaning_not_the_themes_nor_start_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str) -> Any:
        raise OSError(f"{name}: model file unreadable")

    monkeypatch.setattr(encoding, "load_encoder", broken)
    monkeypatch.setattr(encoding, "_LOADED", {})  # a fresh process: nothing loaded yet
    with caplog.at_level(logging.WARNING):
        assert warm_encoders() == []
    assert "could not load the sentence encoder" in caplog.text
    themes = asyncio.run(alert_themes.themes_for(_storm(), load_templates()))
    assert themes is not None and themes.themes, "the words still group the posts"


def test_a_grouping_that_fails_drops_only_the_themes(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_: Any) -> Any:
        raise RuntimeError("the encoder crashed")

    storm = _storm()
    with_themes = composed(storm)
    monkeypatch.setattr(alert_themes, "incident_themes", failing)
    without = composed(storm)

    assert "What it is about" in str(with_themes.blocks_json())
    assert "What it is about" not in str(without.blocks_json())
    assert without.text == with_themes.text and len(without.blocks) < len(with_themes.blocks)


@pytest.mark.slow
def test_the_held_out_figures_score_each_set_with_knobs_chosen_on_the_others(e5: SentenceEncoder) -> None:
    sets = {f"set{seed}": theme_rows(seed, 80, "dev") for seed in (1, 2, 3)}
    anchors = anchors_from_templates(default_templates())

    result = held_out_figures(sets, anchors, CachedEncoder(e5), samples=1)

    assert set(result.figures) == set(grid_settings()) and result.chosen in result.figures
    assert set(result.held_out) == set(sets)
    for name, (knobs, figures) in result.held_out.items():
        assert knobs in result.figures and figures.nmi() == result.figures[knobs][name].nmi()
        assert {OURS, KMEANS, KEYWORDS} <= set(figures.whole) and {OURS, KMEANS, KEYWORDS} <= set(figures.alert)
