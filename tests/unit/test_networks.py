"""What Jetstream and Mastodon streaming frames mean (pure parsing; no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crisiswatch.contracts.schemas import RejectionCode
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, BrandCatalog
from crisiswatch.ingest.networks import (
    FrameKind,
    html_text,
    mastodon_page,
    parse_jetstream,
    parse_mastodon,
)
from crisiswatch.ingest.records import FieldMapping, to_mentions
from crisiswatch.listener.streams import CursorFile, Position
from crisiswatch.runtime.health import Health, Silence

CATALOG = BrandCatalog.from_file(DEFAULT_BRANDS_FILE)
DID = "did:plc:eygmaihciaxprqvxpfvl6flk"


def jetstream_post(text: str, time_us: int = 1_725_911_162_329_308, **record: object) -> str:
    return json.dumps(
        {
            "did": DID,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": "3l3qo2vutsw2b",
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": "3l3qo2vuowo2b",
                "record": {"$type": "app.bsky.feed.post", "createdAt": "2024-09-09T19:46:02.102Z", "text": text}
                | record,
                "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi",
            },
        }
    )


def status(
    status_id: str = "113456789012345678", content: str = "<p>Acme Air lost my bag</p>", **fields: object
) -> dict:
    return {
        "id": status_id,
        "created_at": "2024-11-01T10:00:00.000Z",
        "content": content,
        "language": "en",
        "url": f"https://mastodon.example/@ana/{status_id}",
        "uri": f"https://mastodon.example/users/ana/statuses/{status_id}",
        "spoiler_text": "",
        "reblog": None,
        "account": {"id": "1", "username": "ana", "acct": "ana", "followers_count": 321},
        "mentions": [],
        "tags": [],
        "reblogs_count": 2,
        "favourites_count": 5,
        "replies_count": 1,
    } | fields


def test_a_jetstream_post_becomes_a_mention_with_its_id_url_author_and_own_language() -> None:
    frame = parse_jetstream(jetstream_post("Acme Air lost my bag again", langs=["en-US"]))
    assert frame.kind is FrameKind.POST and frame.cursor == 1_725_911_162_329_308
    assert frame.clock_s == pytest.approx(1_725_911_162.329308)
    post = frame.post
    assert post is not None
    assert post.id == f"at://{DID}/app.bsky.feed.post/3l3qo2vuowo2b"
    assert post.url == f"https://bsky.app/profile/{DID}/post/3l3qo2vuowo2b"
    [mention] = to_mentions(post.record("acme-air"), CATALOG, FieldMapping(lang_is_posts_own=True), "bluesky")
    assert (mention.brand, mention.author_handle, mention.lang) == ("acme-air", DID, "en")


def test_the_posts_own_language_tag_wins_unless_detection_agrees_with_another_of_its_tags() -> None:
    hebrew = "גליל מובייל שוב נפלה, אין קליטה בכל הצפון"
    assert parse_jetstream(jetstream_post(hebrew, langs=["en", "he"])).post.language() == "he"
    assert parse_jetstream(jetstream_post("Acme Air ok", langs=["pt"])).post.language() == "pt"
    assert parse_jetstream(jetstream_post(hebrew)).post.language() == "he", "no tags: detected"


def test_a_mention_facet_or_a_tag_counts_as_a_mention_of_the_brand() -> None:
    text = "@acmeairhelp.bsky.social where is my bag"
    facets = [
        {
            "index": {"byteStart": 0, "byteEnd": len("@acmeairhelp.bsky.social")},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:brand"}],
        }
    ]
    post = parse_jetstream(jetstream_post(text, facets=facets)).post
    assert post.handles == ("acmeairhelp.bsky.social",)
    assert CATALOG.match(post.match_text()) == ["acme-air"]
    tagged = parse_jetstream(jetstream_post("worst flight ever", tags=["NimbusBank"])).post
    assert CATALOG.match(tagged.match_text()) == ["nimbus-bank"]
    facet_tag = [{"index": {"byteStart": 0, "byteEnd": 1}, "features": [{"$type": "x#tag", "tag": "voltcell"}]}]
    assert CATALOG.match(parse_jetstream(jetstream_post("hm", facets=facet_tag)).post.match_text()) == ["voltcell"]


@pytest.mark.parametrize(
    ("frame", "kind", "code"),
    [
        ('{"did": "x", "time_us": 5, "kind": "identity", "identity": {"handle": "a.b"}}', FrameKind.SKIP, None),
        ('{"did": "x", "time_us": 5, "kind": "account", "account": {"active": true}}', FrameKind.SKIP, None),
        (
            '{"did": "x", "time_us": 5, "kind": "commit", "commit": {"operation": "create", '
            '"collection": "app.bsky.feed.like", "rkey": "a", "record": {}}}',
            FrameKind.SKIP,
            None,
        ),
        ('{"did": "x", "time_us": 5, "kind": "labels"}', FrameKind.REFUSED, RejectionCode.UNKNOWN_KIND),
        ('{"did": "x", "kind": "commit"}', FrameKind.REFUSED, RejectionCode.MISSING_FIELD),
        ("{not json", FrameKind.REFUSED, RejectionCode.MALFORMED_JSON),
        (b"\xff\xfe", FrameKind.REFUSED, RejectionCode.INVALID_UTF8),
        ("[1]", FrameKind.REFUSED, RejectionCode.NOT_AN_OBJECT),
        (
            '{"did": "x", "time_us": 5, "kind": "commit", "commit": {"operation": "merge", '
            '"collection": "app.bsky.feed.post", "rkey": "a"}}',
            FrameKind.REFUSED,
            RejectionCode.UNKNOWN_KIND,
        ),
        (
            '{"did": "x", "time_us": 5, "kind": "commit", "commit": {"operation": "create", '
            '"collection": "app.bsky.feed.post", "rkey": "a"}}',
            FrameKind.REFUSED,
            RejectionCode.MISSING_FIELD,
        ),
    ],
)
def test_jetstream_frames_that_are_not_posts_are_skipped_or_refused_with_a_code(
    frame: str | bytes, kind: FrameKind, code: RejectionCode | None
) -> None:
    parsed = parse_jetstream(frame)
    assert (parsed.kind, parsed.code) == (kind, code)
    assert parsed.kind is not FrameKind.REFUSED or parsed.reason


def test_jetstream_deletes_and_updates_name_the_post() -> None:
    delete = json.loads(jetstream_post("x"))
    delete["commit"] = {"operation": "delete", "collection": "app.bsky.feed.post", "rkey": "3l3qo2vuowo2b", "rev": "r"}
    parsed = parse_jetstream(json.dumps(delete))
    assert (parsed.kind, parsed.post_id) == (FrameKind.DELETE, f"at://{DID}/app.bsky.feed.post/3l3qo2vuowo2b")
    update = json.loads(jetstream_post("Acme Air, edited"))
    update["commit"]["operation"] = "update"
    edited = parse_jetstream(json.dumps(update))
    assert edited.kind is FrameKind.EDIT and edited.post.text == "Acme Air, edited"


def test_a_huge_frame_is_refused_before_it_is_parsed() -> None:
    parsed = parse_jetstream(jetstream_post("Acme Air " + "x" * 5000), max_bytes=1000)
    assert (parsed.kind, parsed.code) == (FrameKind.REFUSED, RejectionCode.TOO_LARGE)
    assert "limit is 1000" in parsed.reason


def test_a_mastodon_update_is_a_post_with_its_reach_and_its_mentions_as_handles() -> None:
    content = (
        '<p><span class="h-card"><a href="https://m.example/@NimbusBankHelp" class="u-url mention">@<span>'
        "NimbusBankHelp</span></a></span> my card &amp; app are down<br>again</p>"
    )
    mentions = [{"acct": "NimbusBankHelp@m.example", "username": "NimbusBankHelp"}]
    frame = parse_mastodon("update", json.dumps(status(content=content, mentions=mentions)))
    assert frame.kind is FrameKind.POST and frame.cursor == 113456789012345678
    post = frame.post
    assert post.text == "@NimbusBankHelp my card & app are down\nagain"
    assert post.handles == ("NimbusBankHelp",)
    [mention] = to_mentions(post.record("nimbus-bank"), CATALOG, FieldMapping(lang_is_posts_own=True), "mastodon")
    assert (mention.author_followers, mention.engagement.likes, mention.engagement.reposts) == (321, 5, 2)
    assert mention.url == "https://mastodon.example/@ana/113456789012345678" and mention.lang == "en"


@pytest.mark.parametrize(
    ("event", "data", "kind", "code"),
    [
        ("delete", "113456789012345678", FrameKind.DELETE, None),
        ("status.update", json.dumps(status()), FrameKind.EDIT, None),
        ("update", json.dumps(status(reblog=status("1"))), FrameKind.SKIP, None),
        ("filters_changed", "", FrameKind.SKIP, None),
        ("notification", "{}", FrameKind.REFUSED, RejectionCode.UNKNOWN_KIND),
        ("update", "{oops", FrameKind.REFUSED, RejectionCode.MALFORMED_JSON),
        ("update", json.dumps({"id": "1"}), FrameKind.REFUSED, RejectionCode.MISSING_FIELD),
        ("update", json.dumps(status(content="x" * 70_000)), FrameKind.REFUSED, RejectionCode.TOO_LARGE),
    ],
)
def test_mastodon_events_are_posts_edits_deletes_skips_or_refusals(
    event: str, data: str, kind: FrameKind, code: RejectionCode | None
) -> None:
    parsed = parse_mastodon(event, data)
    assert (parsed.kind, parsed.code) == (kind, code)


def test_a_timeline_page_reads_oldest_first_for_a_backfill() -> None:
    page = json.dumps([status("300"), status("100"), status("200")])
    assert [frame.cursor for frame in mastodon_page(page)] == [100, 200, 300]
    assert mastodon_page("nope")[0].code is RejectionCode.MALFORMED_JSON


def test_status_html_becomes_plain_text() -> None:
    assert html_text("<p>a&lt;b</p><p>c</p>") == "a<b\n\nc"


def test_the_scenario_served_as_either_network_reads_back_as_the_scenarios_posts_in_order() -> None:
    from crisiswatch.ingest.scenario import demo_scenario, generate
    from crisiswatch.listener.frame_server import scenario_frames

    records = list(generate(demo_scenario()))[:300]
    bluesky = [parse_jetstream(frame) for frame in scenario_frames(records, "bluesky")]
    assert [frame.post.text for frame in bluesky] == [record["text"] for record in records]
    cursors = [frame.cursor for frame in bluesky]
    assert cursors == sorted(set(cursors)), "positions strictly increase, as Jetstream's time_us does"
    events = [json.loads(line) for line in scenario_frames(records, "mastodon")]
    mastodon = [parse_mastodon(event["event"], event["data"]) for event in events]
    assert [frame.post.text for frame in mastodon] == [record["text"].strip() for record in records]
    assert {frame.kind for frame in bluesky + mastodon} == {FrameKind.POST}


def test_a_reconnection_drops_what_was_read_and_counts_what_arrives_out_of_order() -> None:
    from crisiswatch.listener.streams import Placement, ReadPosition

    position = ReadPosition()
    now = 1_000.0
    assert [position.place(c, c / 1e6, now) for c in (100, 200, 300)] == [Placement.NEW] * 3
    assert position.place(250, 250 / 1e6, now) is Placement.OUT_OF_ORDER, "behind the furthest read: still taken"
    position.reconnected()  # resumes from an acknowledged 200: 200..300 come again
    assert [position.place(c, c / 1e6, now) for c in (200, 300)] == [Placement.REPLAYED] * 2
    assert position.place(400, 400 / 1e6, now) is Placement.NEW
    assert position.place(350, 350 / 1e6, now) is Placement.OUT_OF_ORDER, "past the replay, behind is out of order"
    assert position.place(10**15, now + 3600, now) is Placement.AHEAD, "an hour ahead of this clock"
    assert position.read_high == 400, "a frame dated ahead never moves the position"
    restarted = ReadPosition()
    restarted.resumed(400)
    restarted.reconnected()
    assert restarted.place(399, None, now) is Placement.REPLAYED
    assert restarted.place(400, None, now) is Placement.NEW, "the post at the saved cursor is judged by its id"


def test_mastodon_positions_never_drop_a_status_federated_late() -> None:
    from crisiswatch.listener.streams import Placement, ReadPosition

    position = ReadPosition(ordered=False)
    position.place(500, None, 0)
    position.reconnected()
    assert position.place(450, None, 0) is Placement.OUT_OF_ORDER


def test_the_cursor_file_is_replaced_whole_and_an_unreadable_one_starts_live(tmp_path: Path) -> None:
    cursor = CursorFile(tmp_path / "nested" / "bluesky.json")
    assert cursor.load() == Position()
    cursor.save(Position(42, ("acme-air/at://x",)))
    assert cursor.load() == Position(42, ("acme-air/at://x",))
    assert [p.name for p in cursor.path.parent.iterdir()] == ["bluesky.json"], "no temporary file left behind"
    cursor.path.write_text("{half")
    assert cursor.load() == Position()


def test_a_silent_stream_makes_the_service_unready_until_it_speaks() -> None:
    now = [0.0]
    health = Health(clock=lambda: now[0])
    silence = Silence("the bluesky stream", 60, clock=lambda: now[0])
    health.checks.append(silence)
    health.beat()
    health.broker_answered()
    assert health.readiness()[0]
    now[0] = 61
    health.beat()
    health.broker_answered()
    ready, why = health.readiness()
    assert not ready and "bluesky stream has been silent for 61 s" in why
    silence.heard()
    assert health.readiness()[0]


def test_a_server_sent_line_that_never_ends_ends_the_connection_before_it_is_held_whole() -> None:
    import asyncio

    from crisiswatch.listener.streams import BoundedLines, StreamEnded

    async def body(chunks: list[bytes]):
        for chunk in chunks:
            yield chunk

    async def read(chunks: list[bytes]) -> list[bytes]:
        return [chunk async for chunk in BoundedLines(body(chunks), limit=100)]

    fine = [b"event: update\ndata: " + b"x" * 70, b"x" * 20 + b"\n\n"] * 50
    assert asyncio.run(read(fine)) == fine, "long streams of short lines pass"
    with pytest.raises(StreamEnded, match="too_large"):
        asyncio.run(read([b"data: " + b"x" * 60] * 3))
