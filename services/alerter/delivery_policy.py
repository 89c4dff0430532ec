"""When and how an incident event reaches people: once per revision, retried, down a fallback chain, then forgotten.

Written without faust so that each rule is tested on its own: the record of
what was delivered is any mutable mapping (the app passes its changelogged
table; tests pass a dict), and sending goes through the notifier, which only
sends (:mod:`.delivery`).

- **Once per revision.** An event whose revision was delivered already (a
  redelivery after a rebalance, a replay) is skipped before anything is composed.
- **Composed once.** The message is composed before the first attempt; retries
  and fallbacks send that same message.
- **Retry.** A failure worth retrying (Slack down, rate limited) is retried with
  capped exponential backoff until it passes: the event, and its partition, wait.
- **Fallback.** A final refusal dead-letters the event with Slack's reason and
  sends the message down the notifier's fallback chain (fallback channel, then
  console and alerts file), each link retried alike.
- **Expiry.** The record of an incident resolved more than the retention ago
  may go; an open incident's record is kept whatever its age.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from crisiswatch.contracts.schemas import Incident, IncidentEventType, utc_now
from crisiswatch.runtime.retry import Backoff, retry_async

from . import metrics
from .delivery import DeliveryError, Notifier, UndeliverableError
from .message import AlertMessage

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60.0

DeadLetter = Callable[[str], Awaitable[None]]
"""Keeps the event in the dead-letter topic with the given reason."""


def already_delivered(record: Mapping[str, Any] | None, incident: Incident) -> bool:
    """Whether this revision of the incident (or a later one) was delivered already."""
    return record is not None and int(record.get("revision", 0)) >= incident.revision


def delivery_record(incident: Incident, thread: str | None, now: datetime) -> dict[str, Any]:
    """What to remember once the event is delivered: its revision, the thread, and when it resolved."""
    record: dict[str, Any] = {"revision": incident.revision, "thread": thread}
    if incident.event is IncidentEventType.RESOLVED:
        record["resolved_at"] = now.isoformat()
    return record


def expired_deliveries(deliveries: Mapping[str, Any], cutoff: datetime) -> list[str]:
    """Incidents whose delivery record may go: resolved before ``cutoff`` (open ones are kept whatever their age)."""
    return [
        incident_id
        for incident_id, record in deliveries.items()
        if record and record.get("resolved_at") and datetime.fromisoformat(record["resolved_at"]) < cutoff
    ]


async def deliver_once(
    incident: Incident,
    deliveries: MutableMapping[str, Any],
    compose: Callable[[Incident], Awaitable[AlertMessage]],
    notifier: Notifier,
    dead_letter: DeadLetter,
    max_backoff_s: float = MAX_BACKOFF_S,
) -> bool:
    """Deliver the event unless its revision was delivered already; record it in ``deliveries``.

    Returns whether it was sent now. ``compose`` runs once, before the first attempt.
    """
    record = deliveries.get(incident.incident_id)
    if already_delivered(record, incident):
        metrics.DELIVERIES.labels(notifier.channel, "duplicate").inc()
        return False
    message = await compose(incident)
    thread = await deliver_alert(notifier, message, (record or {}).get("thread"), dead_letter, max_backoff_s)
    deliveries[incident.incident_id] = delivery_record(incident, thread, utc_now())
    return True


async def deliver_alert(
    notifier: Notifier,
    message: AlertMessage,
    thread: str | None,
    dead_letter: DeadLetter,
    max_backoff_s: float = MAX_BACKOFF_S,
) -> str | None:
    """Send one composed event; one that Slack refuses for good never holds back the events behind it.

    Failures worth retrying are retried until they pass. A final refusal
    (``channel_not_found``, ``invalid_blocks``...) hands ``dead_letter`` the
    reason and the message goes down the fallback chain; when every link
    refuses, the event stays only in the dead-letter topic. Returns the thread
    to remember for the incident: the one that showed the alert, else
    ``thread``. While this runs, the event counts in the age of the oldest
    undelivered alert.
    """
    incident = message.incident
    with metrics.UNDELIVERED.track((incident.incident_id, incident.revision)):
        current: Notifier | None = notifier
        given, outcome = thread, "delivered"
        while current is not None:
            try:
                shown = await send_with_retry(current, message, given, max_backoff_s, outcome)
            except UndeliverableError as error:
                _refused(current, incident, error)
                if current is notifier:
                    await dead_letter(f"Slack refused the alert for good: {error}")
                current, given, outcome = current.fallback, None, "fallback"
                continue
            metrics.SLACK_CREDENTIALS_REJECTED.labels(current.channel).set(0)
            return shown or thread
        log.error(
            "no notifier could show the alert; it is kept only in the dead-letter topic",
            extra={"incident": incident.incident_id, "revision": incident.revision},
        )
        return thread


def _refused(notifier: Notifier, incident: Incident, error: UndeliverableError) -> None:
    """Count and log a final refusal; a refused token or webhook is critical, as every later alert will fail too."""
    metrics.DELIVERIES.labels(notifier.channel, "failed_final").inc()
    fields = {
        "incident": incident.incident_id,
        "revision": incident.revision,
        "channel": notifier.channel,
        "error": str(error)[:300],
        "slack_error": error.code,
        "fallback": notifier.fallback.channel if notifier.fallback is not None else None,
    }
    if error.credentials:
        metrics.SLACK_CREDENTIALS_REJECTED.labels(notifier.channel).set(1)
        log.critical(
            "Slack rejects the token or webhook: EVERY alert through it will fail until it is replaced", extra=fields
        )
    else:
        log.error("Slack refused the alert for good", extra=fields)


async def send_with_retry(
    notifier: Notifier,
    message: AlertMessage,
    thread: str | None,
    max_backoff_s: float = MAX_BACKOFF_S,
    outcome: str = "delivered",
) -> str | None:
    """Send through ``notifier``, retrying with capped exponential backoff while the failure is worth retrying.

    An :class:`~.delivery.UndeliverableError` passes through at once, for
    :func:`deliver_alert` to fall back. ``outcome`` is the label a success
    counts under (``fallback`` when the notifier stands in for another).
    """
    incident = message.incident

    async def attempt() -> str | None:
        started = time.monotonic()
        result = await notifier.send(message, thread)
        metrics.DELIVERY_SECONDS.labels(notifier.channel).observe(time.monotonic() - started)
        return result

    result = await retry_async(
        attempt,
        retry_on=DeliveryError,
        backoff=Backoff(first_s=1.0, max_s=max_backoff_s),
        on_failure=lambda _: metrics.DELIVERIES.labels(notifier.channel, "failed").inc(),
        log=log,
        message="alert delivery failed; retrying",
        extra={"incident": incident.incident_id, "revision": incident.revision},
    )
    metrics.DELIVERIES.labels(notifier.channel, outcome).inc()
    return result
