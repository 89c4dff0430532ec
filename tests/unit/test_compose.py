from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block

from crisiswatch.alerter.alert_blocks import ButtonValue, action_note, compose_blocks, headline, slack_link
from crisiswatch.alerter.alert_themes import anchors
from crisiswatch.alerter.replies import draft, drivers, load_templates, top_terms
from crisiswatch.contracts.schemas import Incident, IncidentEventType, Severity
from crisiswatch.themes.clustering import Theme, Themes
from crisiswatch.themes.incidents import brand_words, incident_themes

from ..factories import incident, sample_mentions


def _incident(event: IncidentEventType = IncidentEventType.OPENED) -> Incident:
    (sample,) = sample_mentions(
        ["App is down <again> & again"],
        id="1",
        author_handle="ana",
        author_followers=1200,
        url="https://social.example/1",
        negative_score=0.97,
    )
    return incident(event, reach=25_000, sample_mentions=[sample], peak_negative=29, total_negative=392)


def test_the_alert_blocks_are_valid_block_kit_and_explain_the_numbers() -> None:
    blocks = compose_blocks(_incident())
    payload = [b.to_dict() for b in blocks]
    assert [Block.parse(p).to_dict() for p in payload] == payload
    text = str(payload)
    assert "nimbus-bank" in text and "41 observed vs 1.5 expected" in text
    assert "&lt;again&gt; &amp; again" in text, "post text is escaped for Slack mrkdwn"
    assert "DM us" in text


def test_the_resolution_summarises_duration_peak_and_total() -> None:
    incident = _incident(IncidentEventType.RESOLVED)
    text = str([b.to_dict() for b in compose_blocks(incident)])
    assert "392 negative mentions" in text and "peak 29" in text
    assert headline(incident).startswith("RESOLVED nimbus-bank")


def _with_posts(texts: list[str], lang: str = "en", severity: Severity = Severity.CRITICAL) -> Incident:
    return _incident().model_copy(update={"sample_mentions": sample_mentions(texts, lang=lang), "severity": severity})


def test_the_theme_comes_from_the_posts_and_picks_matching_drafts() -> None:
    incident = _with_posts(
        [
            "Nimbus Bank charged me twice for the same payment",
            "Double charged again by @NimbusBank, where is my refund",
            "nimbus bank app is slow today",
        ]
    )
    found = drivers(incident, load_templates())
    assert found.theme == "billing"
    assert "refund" in found.matched
    assert "nimbus" not in found.top_terms and "bank" not in found.top_terms
    drafts = draft(incident, load_templates())
    assert len(drafts.replies) >= 2
    assert all("refund" in reply and "DM us" in reply for reply in drafts.replies)
    assert drafts.next_update == "11:45 UTC", "critical: next update within 30 minutes, on a quarter hour"
    assert drafts.status_update is not None and drafts.status_update.startswith("Investigating")


def test_hebrew_posts_get_hebrew_drafts_with_a_right_to_left_mark_and_intact_text() -> None:
    incident = _with_posts(["האפליקציה של נימבוס לא עובד מהבוקר", "שוב תקלה, לא מצליח להתחבר לחשבון"], lang="he")
    drafts = draft(incident, load_templates(), display_name="נימבוס")
    assert drafts.language == "he"
    assert drafts.replies[0].startswith("\u200f") and "נימבוס" in drafts.replies[0]
    assert drivers(incident, load_templates()).theme == "outage"
    text = str([b.to_dict() for b in compose_blocks(incident)])
    assert "האפליקציה של נימבוס לא עובד מהבוקר" in text
    assert "הודעה פרטית" in text


def test_a_quoted_right_to_left_post_is_set_apart_so_a_leading_handle_cannot_flip_it() -> None:
    hebrew = _with_posts(["@NimbusBank האפליקציה לא עובדת, בושה!"], lang="he")
    english = _with_posts(["@NimbusBank the app is down"], lang="en")
    [hebrew_posts] = [t for t in _section_texts(hebrew) if t.startswith("*Top posts*")]
    [english_posts] = [t for t in _section_texts(english) if t.startswith("*Top posts*")]
    assert "• \u2067@NimbusBank האפליקציה לא עובדת, בושה!\u2069 — @" in hebrew_posts
    assert "• _@NimbusBank the app is down_ — @" in english_posts


def _section_texts(incident: Incident) -> list[str]:
    blocks = [b.to_dict() for b in compose_blocks(incident)]
    return [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]


def test_a_language_without_templates_and_an_unknown_theme_fall_back_to_english_other() -> None:
    incident = _with_posts(["Nimbus Bank, quelle honte"], lang="fr", severity=Severity.WARNING)
    drafts = draft(incident, load_templates())
    assert drafts.language == "en"
    assert drafts.status_update is None, "status-page drafts go with critical incidents only"
    assert "Nimbus Bank" in drafts.replies[0]
    named = draft(incident.model_copy(update={"brand_name": "NIMBUS Bank plc"}), load_templates())
    assert "NIMBUS Bank plc" in named.replies[0], "the brand's own display name wins over one made from its id"


def test_a_templates_file_with_a_typo_fails_with_the_place_of_the_error(tmp_path: Path) -> None:
    broken = tmp_path / "templates.toml"
    broken.write_text(
        '[themes.outage]\nkeywords = ["down"]\n[replies.en]\noutage = ["Sorry, {brnd} is down"]\nother = ["Sorry"]\n'
    )
    with pytest.raises(ValueError, match=r"replies.en.outage: unknown placeholders \['brnd'\]"):
        load_templates(broken)
    missing = tmp_path / "missing.toml"
    missing.write_text('[themes.delay]\nkeywords = ["late"]\n[replies.en]\nother = ["Sorry"]\n')
    with pytest.raises(ValueError, match=r"replies.en has no drafts for themes \['delay'\]"):
        load_templates(missing)


def test_frequent_terms_tied_on_count_keep_their_first_appearance_order() -> None:
    posts = ["refund delayed card", "delayed refund, card", "still no refund delayed"]
    assert top_terms(posts) == ("refund", "delayed", "card")


def _buttons(incident: Incident) -> dict[str, dict]:
    blocks = [b.to_dict() for b in compose_blocks(incident, interactive=True)]
    actions = next(b for b in blocks if b["type"] == "actions")
    return {e["action_id"]: e for e in actions["elements"]}


def test_not_a_crisis_sits_beside_resolve_and_says_what_the_detector_will_learn() -> None:
    incident = _incident()
    buttons = _buttons(incident)
    ids = list(buttons)
    assert ids.index("crisiswatch:not_a_crisis") == ids.index("crisiswatch:resolve") + 1
    button = buttons["crisiswatch:not_a_crisis"]
    assert button["text"]["text"] == "Not a crisis"
    assert ButtonValue.model_validate_json(button["value"]) == ButtonValue(
        incident=incident.incident_id, brand="nimbus-bank"
    )
    confirm = button["confirm"]
    assert confirm["confirm"]["text"] == "Not a crisis" and confirm["deny"]["text"] == "Keep open"
    explained = confirm["text"]["text"]
    assert "false alarm" in explained and "normal for nimbus-bank" in explained
    assert "same size stays quiet" in explained and "larger one still alerts" in explained
    assert len(explained) <= 300 and len(confirm["title"]["text"]) <= 100, "Slack's limits for a confirm dialog"
    payload = [b.to_dict() for b in compose_blocks(incident, interactive=True)]
    assert [Block.parse(p).to_dict() for p in payload] == payload


def test_a_false_alarm_resolution_says_the_team_closed_it_as_not_a_crisis() -> None:
    closed = _incident(IncidentEventType.RESOLVED).model_copy(update={"acted_by": "U1", "false_alarm": True})
    assert headline(closed) == (
        "RESOLVED nimbus-bank: closed as not a crisis by <@U1> (392 negative in total, peak 29 per bucket)"
    )
    assert action_note(closed) == (
        ":no_entry_sign: <@U1> marked the nimbus-bank incident as not a crisis; "
        "the detector will treat a surge of this size as normal."
    )
    text = json.dumps([b.to_dict() for b in compose_blocks(closed)])
    assert "<@U1> closed the incident about *nimbus-bank* as not a crisis" in text and "392 negative" in text
    resolved = closed.model_copy(update={"false_alarm": False})
    assert "resolved by <@U1>" in headline(resolved) and "not a crisis" not in action_note(resolved)
    assert "not a crisis" not in json.dumps([b.to_dict() for b in compose_blocks(resolved)])


def test_the_horizon_that_fired_is_shown_beside_the_rule_when_the_event_has_one() -> None:
    fired = [b.to_dict() for b in compose_blocks(_incident().model_copy(update={"horizon": "last 12 h"}))]
    contexts = [e["text"] for b in fired if b["type"] == "context" for e in b["elements"]]
    assert "Fired on the last 12 h of negative mentions" in contexts
    assert contexts.index("Fired on the last 12 h of negative mentions") + 1 == next(
        i for i, text in enumerate(contexts) if text.startswith("Why:")
    ), "it introduces the rule"
    assert "Fired on" not in json.dumps([b.to_dict() for b in compose_blocks(_incident())]), "older events: no line"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://x.com/u/status/1", " <https://x.com/u/status/1|link>"),
        ("https://evil.example/a|<!channel>", " <https://evil.example/a%7C&lt;!channel&gt;|link>"),
        ("https://evil.example/a><!here", " <https://evil.example/a&gt;&lt;!here|link>"),
        ("javascript:alert(1)", ""),
        ("slack://channel?id=C1", ""),
        ("//no-scheme.example/a", ""),
        (None, ""),
    ],
)
def test_a_post_url_becomes_a_plain_http_link_or_nothing(url: str | None, shown: str) -> None:
    assert slack_link(url, "link") == shown


def test_a_crafted_post_url_cannot_ping_the_channel() -> None:
    crafted = "https://a.example/|<!channel> pay here <https://b.example|x"
    hostile = incident(sample_mentions=sample_mentions(["app down again", "still down"], url=crafted))
    text = json.dumps([block.to_dict() for block in compose_blocks(hostile)])
    assert "app down again" in text
    assert "<!channel>" not in text


LOST_BAGS = [
    "@AcmeAir lost my bag on the flight to Denver",
    "still no sign of my suitcase, Acme Air baggage claim is a joke",
    "my luggage never arrived, third day without clothes",
    "bag lost AGAIN by @AcmeAir, baggage desk useless",
    "where is my suitcase @AcmeAir? lost baggage report filed 2 days ago",
    "Acme Air lost both our bags, no update from baggage services",
    "lost luggage and nobody at the claim desk answers",
    "they lost my bag with my medication inside",
    "baggage missing, no tracking, no answers",
    "our suitcases went to Miami instead of Boston",
]
CANCELLED = [
    "@AcmeAir cancelled my flight last minute, no rebooking offered",
    "flight cancelled again and the app shows nothing",
    "Acme Air cancelled our 7am flight, stuck at the airport",
    "third cancellation this month, never flying Acme Air again",
    "they cancelled the flight and want me to wait 2 days",
    "cancelled without notice, rebooked on a flight tomorrow night",
    "my flight got cancelled and the hotel voucher is a joke",
    "another cancelled flight, another missed meeting",
    "cancelled flight, 4 hour queue to rebook",
    "Acme Air cancels flights and hides from customers",
]


def test_an_alert_opens_with_a_summary_line_and_lists_the_storms_themes() -> None:
    posts = sample_mentions(LOST_BAGS + CANCELLED)
    alert = _incident().model_copy(
        update={
            "brand": "acme-air",
            "brand_name": "Acme Air",
            "theme_posts": posts,
            "sample_mentions": posts[:5],
            "observed_negative": 60,
            "expected_negative": 5.0,
        }
    )
    themes = incident_themes(alert, anchors(load_templates()))
    assert themes is not None and len(themes.themes) == 2
    texts = [b["text"]["text"] for b in (x.to_dict() for x in compose_blocks(alert, themes=themes)) if "text" in b]
    summary = texts[1]
    assert summary.startswith("*Mostly ") and "cancel" in summary and "12.0× normal for a Monday" in summary
    about = next(t for t in texts if "*What it is about*" in t)
    assert about.count("• ") == 2 and "cancel" in about
    assert any(word in about for word in ("lost", "bag", "luggage", "suitcase")), "named in the posts' own words"
    assert "acme" not in about.lower(), "the brand's own name names no theme"
    too_few = alert.model_copy(update={"theme_posts": posts[:3], "sample_mentions": posts[:3]})
    assert incident_themes(too_few, anchors(load_templates())) is None


def test_theme_names_made_of_one_long_run_of_letters_cannot_make_the_alert_invalid() -> None:
    huge = "故障" * 400
    themes = Themes(
        themes=[Theme(i, f"{huge} ({huge}, {huge})", None, (huge, huge), 10, 0.25) for i in range(4)],
        assignment=[0] * 40,
        duplicate_of=[None] * 40,
    )
    blocks = [block.to_dict() for block in compose_blocks(_incident(), themes=themes)]
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section" and "text" in b)


def test_the_brand_s_names_leave_the_posts_but_words_that_merely_start_with_them_stay() -> None:
    short = _incident().model_copy(update={"brand": "ba", "brand_name": "BA"})
    assert brand_words(short).sub("_", "lost baggage again @BA_help, bad service #ba, flyba").split() == [
        "lost",
        "baggage",
        "again",
        "_,",
        "bad",
        "service",
        "_,",
        "flyba",
    ]
    acme = _incident().model_copy(update={"brand": "acme-air", "brand_name": "Acme Air"})
    assert brand_words(acme).sub("_", "@AcmeAirHelp Acme Air at the airport, acmeair").split() == [
        "_",
        "_",
        "_",
        "at",
        "the",
        "airport,",
        "_",
    ]
