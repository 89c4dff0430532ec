"""Several brands of one sector surging in the same hours: each is alerted, and each later alert names the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crisiswatch.alerter.alert_blocks import compose_blocks, sector_note
from crisiswatch.alerter.processor import BrandProcessor, StateTables, sector_peers
from crisiswatch.contracts.schemas import IncidentEventType
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, BrandCatalog
from tests.factories import scored_mention

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SECTORS = {"acme-air": "airline", "sky-air": "airline", "nimbus-bank": "bank"}
NAMES = {"acme-air": "Acme Air", "sky-air": "Sky Air", "nimbus-bank": "Nimbus Bank"}


def _traffic(brand: str, storm_at: datetime) -> list:
    calm = [
        scored_mention(
            f"{brand}-{i}", brand, START + timedelta(minutes=i), negative=i % 10 == 0, brand_name=NAMES[brand]
        )
        for i in range(int((storm_at - START) / timedelta(minutes=1)))
    ]
    storm = [
        scored_mention(f"{brand}-s{i}", brand, storm_at + timedelta(seconds=10 * i), negative=True,
                       brand_name=NAMES[brand], text=f"{NAMES[brand]} cancelled flight {i}, stuck at the gate")
        for i in range(90)
    ]  # fmt: skip
    tail = [
        scored_mention(f"{brand}-t{i}", brand, storm_at + timedelta(minutes=20 + i), brand_name=NAMES[brand])
        for i in range(10)
    ]
    return calm + storm + tail


def test_each_brand_of_a_sector_is_alerted_and_the_later_alert_says_the_others_rose_too() -> None:
    processor = BrandProcessor(StateTables({}, {}, {}), DetectorConfig(), timedelta(minutes=2), sectors=SECTORS)
    storm = START + timedelta(hours=3)
    mentions = _traffic("acme-air", storm) + _traffic("sky-air", storm + timedelta(minutes=40))
    mentions += _traffic("nimbus-bank", storm + timedelta(minutes=50))
    opened = {}
    for mention in sorted(mentions, key=lambda m: m.created_at):
        for incident in processor.add(mention)[1]:
            if incident.event is IncidentEventType.OPENED:
                opened[incident.brand] = incident
    assert sorted(opened) == ["acme-air", "nimbus-bank", "sky-air"], "every brand is still alerted on its own"
    assert opened["acme-air"].sector_peers == []
    assert opened["sky-air"].sector_peers == ["Acme Air"]
    assert opened["nimbus-bank"].sector_peers == [], "another sector is not a peer"
    note = sector_note(opened["sky-air"])
    assert note is not None and "*Acme Air*" in note and "same hours" in note
    texts = [str(block.to_dict()) for block in compose_blocks(opened["sky-air"])]
    assert any("Acme Air" in text and "same hours" in text for text in texts)


def test_sector_peers_are_the_same_sector_within_six_hours() -> None:
    openings = {
        "acme-air": (START, "Acme Air"),
        "sky-air": (START - timedelta(hours=7), "Sky Air"),
        "nimbus-bank": (START, "Nimbus Bank"),
    }
    later = START + timedelta(hours=1)
    assert sector_peers("jet-air", later, SECTORS | {"jet-air": "airline"}, openings) == ["Acme Air"]
    assert sector_peers("unknown", later, SECTORS, openings) == []
    assert BrandCatalog.from_file(DEFAULT_BRANDS_FILE).sectors()["acme-air"] == "airline"
