"""The alerter's changelogged tables: their names, and where each key's records live.

Every key belongs to a brand, and its records go to the partition of that
brand's mentions (the producers' default murmur2 of the brand), so a worker
holds exactly the state of the brands it consumes and can write it at the end
of a batch or from a timer, not only while a mention of that brand is current.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import faust
from kafka.partitioner.default import murmur2

BUCKETS_TABLE = "brand-buckets"
SEEN_TABLE = "brand-seen"
DETECTOR_TABLE = "brand-detector"
"""The table of each brand's detector state; :mod:`.seeding` writes to its changelog."""
DELIVERIES_TABLE = "deliveries"


@functools.lru_cache(maxsize=1 << 16)
def partition_for(brand: str, partitions: int) -> int:
    """The partition of ``brand``'s mentions (the producers' default murmur2 of the raw key), where its state lives.

    Cached: every state record written asks, and kafka-python's murmur2 is pure Python.

    The changelog's keys are JSON, as faust writes them, so its partition is
    not the one the default partitioner would pick for the record itself.
    """
    return (murmur2(brand.encode()) & 0x7FFFFFFF) % partitions


def brand_of_incident(incident_id: str) -> str:
    """The brand of an incident id (``<brand>-<opened at, minute>``)."""
    return incident_id.rsplit("-", 1)[0]


class BrandTable(faust.Table):
    """A table whose records go to the partition of the brand their key belongs to."""

    def __init__(self, app: faust.App, *, brand_of: Callable[[str], str], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.brand_of = brand_of

    def partition_for_key(self, key: Any) -> int | None:
        """The partition of the key's brand, whatever event (if any) is being processed."""
        return partition_for(self.brand_of(str(key)), self.partitions or 1)


def add_brand_table(
    app: faust.App, name: str, brand_of: Callable[[str], str], partitions: int, **options: Any
) -> BrandTable:
    """A changelogged JSON table of ``app`` keyed by strings, its records partitioned by the brand of their key."""
    schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    table = BrandTable(
        app, name=name, brand_of=brand_of, beacon=app.tables.beacon, partitions=partitions, schema=schema, **options
    )
    app.tables.add(table)
    return table
