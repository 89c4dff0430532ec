"""Starting brands warm: detector states learnt from recorded history, written where the alerter restores state.

The alerter keeps each brand's detector state in a changelogged table and
reads the whole changelog back when it starts. Seeding writes a state per
brand to that changelog, keyed and partitioned exactly as the alerter's own
writes are (the brand as a JSON string, in the partition of the brand's
mentions), so the next start restores it as if the alerter had watched the
history itself. A running alerter would not re-read
it and would overwrite it, so seeding refuses while the alerter's group has
members. Each record is its own request: some Kafka-protocol brokers (the
embedded one among them) report the end of a partition as the start of its
last batch plus one, and faust stops restoring there.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from crisiswatch.contracts.topics import Topics
from crisiswatch.detection.state import DetectorState
from crisiswatch.runtime.kafka import KafkaSettings, ensure_topics, make_producer, partition_count

from .settings import AlerterSettings
from .tables import DETECTOR_TABLE, partition_for

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 30.0


class SeedRefused(RuntimeError):
    """Seeding would be lost or would clobber live state (the alerter is running)."""


def changelog_topic(settings: AlerterSettings, kafka: KafkaSettings) -> str:
    """The changelog topic of the detector-state table, as faust names it (``<app id>-<table>-changelog``)."""
    return f"{Topics(kafka.topic_prefix).group(settings.app_id)}-{DETECTOR_TABLE}-changelog"


def write_seeds(
    states: Mapping[str, DetectorState], settings: AlerterSettings, kafka: KafkaSettings, force: bool = False
) -> str:
    """Write each brand's state to the detector table's changelog; returns the topic written.

    Raises :class:`SeedRefused` while the alerter's consumer group has members,
    or when the broker cannot say whether it has any (unless ``force``).
    """
    topics = Topics(kafka.topic_prefix)
    ensure_topics(kafka, topics.all(), kafka.topic_partitions)
    partitions = partition_count(kafka, topics.scored)
    topic = changelog_topic(settings, kafka)
    admin = _GroupAdmin(bootstrap_servers=kafka.servers, client_id="crisiswatch-seed", **kafka.client_security())
    try:
        _refuse_while_running(admin, topics.group(settings.app_id), force)
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(
                [NewTopic(topic, partitions, 1, topic_configs={"cleanup.policy": "compact"})], timeout_ms=10_000
            )
    finally:
        admin.close()
    producer = make_producer(kafka, "crisiswatch-seed")
    try:
        for brand, state in states.items():
            future = producer.send(
                topic,
                key=json.dumps(brand).encode(),
                value=json.dumps(state.model_dump(mode="json")).encode(),
                partition=partition_for(brand, partitions),
            )
            producer.flush(SEND_TIMEOUT_S)
            future.get(timeout=SEND_TIMEOUT_S)
    finally:
        producer.close()
    log.info("seeded brands", extra={"brands": len(states), "topic": topic})
    return topic


class _GroupAdmin(KafkaAdminClient):
    """An admin client whose group descriptions skip the ACL operations, which seeding never asks for.

    Some Kafka-protocol brokers (the embedded one among them) fill that field
    with bits kafka-python cannot decode, which would fail the whole call.
    """

    def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.pop("authorized_operations", None)
        return obj


def _refuse_while_running(admin: KafkaAdminClient, group: str, force: bool) -> None:
    try:
        described = admin.describe_groups([group])
    except (KafkaError, ValueError) as error:
        if force:
            log.warning("could not tell whether the alerter is running", extra={"group": group, "error": str(error)})
            return
        raise SeedRefused(
            f"could not tell whether the alerter's group {group!r} is running ({error}); "
            "make sure it is stopped and pass --force"
        ) from None
    members = (described.get(group) or {}).get("members") or []
    if members:
        raise SeedRefused(f"the alerter's group {group!r} has {len(members)} members: stop it, seed, restart")
