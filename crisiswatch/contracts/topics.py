"""Topic names, configurable with a prefix so a replay can run beside live traffic."""

from __future__ import annotations

from dataclasses import dataclass

RAW = "mentions.raw"
SCORED = "mentions.scored"
ALERTS = "crisis.alerts"
ACTIONS = "crisis.actions"
DLQ = "mentions.dlq"


@dataclass(frozen=True)
class Topics:
    """The five topics of one pipeline namespace (``prefix`` is prepended verbatim, e.g. ``replay.``)."""

    prefix: str = ""

    @property
    def raw(self) -> str:
        """Validated, normalised mentions from the listener."""
        return self.prefix + RAW

    @property
    def scored(self) -> str:
        """Mentions with sentiment, keyed by brand."""
        return self.prefix + SCORED

    @property
    def alerts(self) -> str:
        """Incident events: the durable record of what was alerted."""
        return self.prefix + ALERTS

    @property
    def actions(self) -> str:
        """What people did to incidents in Slack (acknowledge, assign, snooze, resolve), keyed by brand."""
        return self.prefix + ACTIONS

    @property
    def dlq(self) -> str:
        """Rejected input with the reason."""
        return self.prefix + DLQ

    def group(self, name: str) -> str:
        """A consumer-group (or faust app) id inside this namespace, so a replay never joins a live group."""
        return self.prefix + name

    def all(self) -> tuple[str, ...]:
        """Every topic of the namespace."""
        return (self.raw, self.scored, self.alerts, self.actions, self.dlq)
