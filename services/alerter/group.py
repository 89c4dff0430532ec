"""The alerter's place in its consumer group: rejoining after it lost its membership, and how far it has read.

faust-streaming 0.15.3 drives aiokafka 0.14 from a thread of its own. When
the group drops the alerter (a commit answered ``UnknownMemberIdError``, a
session that expired while the process was frozen, a poll interval
exceeded), aiokafka rejoins in ``ensure_active_group``: it first lets faust
revoke the partitions (faust stops fetching until the next assignment and
waits for its streams to drain and its producer to flush), then skips the
rejoin whenever the consumer has not fetched for ``max_poll_interval_ms``.
A revoke that took longer than that, or a member that was idle that long,
can therefore never rejoin: faust waits for an assignment before it fetches
again, and aiokafka waits for a fetch before it rejoins. The alerter
handled nothing more, for good (aio-libs/aiokafka#1187, robinhood/faust#517).
:func:`mark_fetch_active`, called at the end of faust's revoke, tells
aiokafka that the consumer is active, so the rejoin that follows goes ahead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from crisiswatch.runtime.health import ReadProgress

log = logging.getLogger(__name__)


def aiokafka_subscription(app: Any) -> Any | None:
    """The aiokafka ``SubscriptionState`` behind the faust app's consumer; None before the consumer started."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    return getattr(consumer, "_subscription", None)


def mark_fetch_active(app: Any) -> bool:
    """Count "now" as the consumer's last fetch, so aiokafka's rejoin after a revoke is not skipped as idle.

    Work-around for aio-libs/aiokafka#1187: the idle check in
    ``ensure_active_group`` runs after the revoke callback, and faust fetches
    nothing between revoke and assignment. Returns whether the mark was set
    (False when the consumer is not running yet, or aiokafka's internals
    moved: ``tests/unit/test_alerter_group.py`` pins them).
    """
    subscription = aiokafka_subscription(app)
    if subscription is None or not hasattr(subscription, "_last_fetch_ended"):
        log.warning("cannot mark the consumer active; a rejoin after a long revoke may be skipped")
        return False
    # One attribute store: atomic under the GIL, safe from faust's thread while aiokafka's runs.
    subscription._last_fetch_ended = time.monotonic()
    return True


def read_progress(
    assigned: set[Any],
    ends: Mapping[Any, int | None],
    read_offsets: Mapping[Any, int | None],
    committed: Mapping[Any, int | None],
    watched: set[str],
) -> ReadProgress:
    """Progress of a faust consumer from its assignment, high-water marks, last read and committed offsets.

    ``read_offsets`` holds the offset of the last record read on each
    partition (faust's monitor), so the position is one beyond it;
    ``committed`` the next offset to read as committed (what a member that
    has read nothing since its assignment starts from; with neither, the
    start of the partition). A partition whose end is unknown counts one
    record of lag: the consumer has not fetched from it since it was
    assigned, so it cannot count as caught up (a member stuck before its
    first fetch must not look idle).
    """
    mine = [tp for tp in assigned if tp.topic in watched]
    lag = position = 0
    for tp in mine:
        read, done = read_offsets.get(tp), committed.get(tp)
        known = [offset for offset in (None if read is None else read + 1, done) if offset is not None]
        at = max(known, default=0)
        position += at
        end = ends.get(tp)
        lag += 1 if end is None else max(0, end - at)
    return ReadProgress(len(mine), lag, position)
