"""Liveness and readiness that mean something: a heartbeat from each service's main loop and from its broker.

``/livez`` fails when the main loop has not beaten for ``stuck_after_s``: the
process is up (the metrics thread answers) but its work is stuck, and a
restart is the cure. It fails too when the service's group consumer has
held no partitions, or has had lag and read nothing, for ``stalled_after_s``
while the broker answers: the loop goes round, but it will never be handed
a record again (a member the group dropped and that never rejoined), and a
restart rejoins. ``/readyz`` fails until the loop has beaten and the
broker has answered, and again whenever the broker has not answered for
``unready_after_s``: the pod should take no traffic, and an SRE sees which
half is wrong in the body. Both are served beside ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
"""How often an event-loop service beats from a timer (well inside any ``stuck_after_s``)."""


class ReadProgress(NamedTuple):
    """What a group consumer holds and how far it has read: what :meth:`Health.consumer_progress` is told."""

    partitions: int
    """Partitions of the watched topics assigned to this member."""
    lag: int
    """Records on those partitions not read yet (partitions whose end or position is unknown count 0)."""
    position: int
    """A number that grows whenever the consumer reads: the sum of its positions."""


class HealthSettings(BaseSettings):
    """How long a silent main loop or broker may last before a probe fails (``HEALTH_*``, every service)."""

    model_config = SettingsConfigDict(env_prefix="HEALTH_", frozen=True, extra="ignore", hide_input_in_errors=True)

    stuck_after_s: float = Field(default=120.0, gt=0, description="/livez fails after the main loop is this silent")
    unready_after_s: float = Field(default=30.0, gt=0, description="/readyz fails after the broker is this silent")
    broker_check_s: float = Field(default=10.0, gt=0, description="how often the broker is asked a metadata question")
    stalled_after_s: float = Field(
        default=120.0,
        gt=0,
        description="/livez fails after the group consumer held no partitions, or had lag and read nothing, this long",
    )

    def health(self) -> Health:
        """A fresh :class:`Health` with these limits."""
        return Health(self.stuck_after_s, self.unready_after_s, stalled_after_s=self.stalled_after_s)


@dataclass
class Health:
    """When the main loop and the broker last showed life (monotonic seconds); thread-safe by assignment."""

    stuck_after_s: float = 120.0
    unready_after_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    stalled_after_s: float = 120.0
    last_beat: float | None = field(default=None, init=False)
    last_broker_answer: float | None = field(default=None, init=False)
    last_consumer_progress: float | None = field(default=None, init=False)
    """When the group consumer last held partitions and was caught up or read on (None: never reported)."""
    consumer_state: str = field(default="", init=False)
    """What the consumer looked like at its last report, for the probe's body."""
    _last_position: int | None = field(default=None, init=False)
    checks: list[Callable[[], tuple[bool, str]]] = field(default_factory=list, init=False)
    """More conditions of readiness (e.g. :class:`Silence` of a live stream): each says whether it holds, and why."""

    def beat(self) -> None:
        """The main loop went round once (call it at least every ``stuck_after_s``, idle or not)."""
        self.last_beat = self.clock()

    def beat_unless_stuck(self, busy_since: float | None) -> None:
        """Beat from a timer for a loop whose work item has been in hand since ``busy_since`` (None: idle).

        The loop counts as stuck only when one item has been in hand for
        ``stuck_after_s`` while the broker answers; with the broker silent the
        item is most likely waiting for it, and a restart would not help.
        """
        now = self.clock()
        if busy_since is None or now - busy_since < self.stuck_after_s or self._broker_silent(now):
            self.beat()

    def consumer_progress(self, partitions: int, lag: int, position: int) -> None:
        """Report the group consumer: partitions it holds, records it has not read yet, and how far it has read.

        Call it every few seconds from the loop that reads (``position`` is
        any number that grows as records are read, e.g. the sum of the read
        positions). The consumer progresses while it holds a partition and is
        caught up (an idle stream) or read on since the last report; while the
        broker is silent it counts as progressing too, as waiting for the
        broker is not a stall a restart would cure.
        """
        now = self.clock()
        moved = self._last_position is not None and position != self._last_position
        self._last_position = position
        if partitions == 0:
            self.consumer_state = "holds no partitions"
        elif lag > 0 and not moved:
            self.consumer_state = f"has {lag} records to read and read none since the last report"
        else:
            self.consumer_state = f"holds {partitions} partitions, lag {lag}"
        progressing = partitions > 0 and (lag == 0 or moved)
        if progressing or self.last_consumer_progress is None or self._broker_silent(now):
            self.last_consumer_progress = now

    def _broker_silent(self, now: float) -> bool:
        return self.last_broker_answer is None or now - self.last_broker_answer > self.unready_after_s

    def broker_answered(self) -> None:
        """The broker acknowledged a request: a produce, a commit, a metadata fetch."""
        self.last_broker_answer = self.clock()

    def liveness(self) -> tuple[bool, str]:
        """Whether the main loop is alive; before its first beat the process counts as starting (and alive)."""
        if self.last_beat is None:
            return True, "starting: the main loop has not run yet"
        now = self.clock()
        silent = now - self.last_beat
        if silent > self.stuck_after_s:
            return False, f"stuck: the main loop last ran {silent:.0f} s ago (limit {self.stuck_after_s:g} s)"
        if self.last_consumer_progress is not None:
            stalled = now - self.last_consumer_progress
            if stalled > self.stalled_after_s and not self._broker_silent(now):
                return False, (
                    f"stalled: the group consumer {self.consumer_state}; it last held partitions and read on "
                    f"{stalled:.0f} s ago (limit {self.stalled_after_s:g} s)"
                )
        return True, f"alive: the main loop ran {silent:.1f} s ago"

    def readiness(self) -> tuple[bool, str]:
        """Whether the service can do its work: its loop runs and its broker answers."""
        live, why = self.liveness()
        if not live:
            return False, why
        if self.last_beat is None:
            return False, why
        if self.last_broker_answer is None:
            return False, "waiting for the broker's first answer"
        silent = self.clock() - self.last_broker_answer
        if silent > self.unready_after_s:
            return False, f"the broker last answered {silent:.0f} s ago (limit {self.unready_after_s:g} s)"
        for check in self.checks:
            ok, why = check()
            if not ok:
                return False, why
        return True, f"ready: the broker answered {silent:.1f} s ago"


@dataclass
class Silence:
    """A readiness check that fails when ``what`` (a live stream) has said nothing for ``limit_s``.

    The stream is heard when a frame arrives; before the first one, the limit
    counts from when the check was made (a stream that never speaks fails too).
    """

    what: str
    limit_s: float
    clock: Callable[[], float] = time.monotonic
    last_heard: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.last_heard = self.clock()

    def heard(self) -> None:
        """A frame arrived."""
        self.last_heard = self.clock()

    def silent_s(self) -> float:
        """Seconds since the last frame."""
        return self.clock() - self.last_heard

    def __call__(self) -> tuple[bool, str]:
        """Whether the stream spoke within the limit, and why."""
        silent = self.silent_s()
        if silent > self.limit_s:
            return False, f"{self.what} has been silent for {silent:.0f} s (limit {self.limit_s:g} s)"
        return True, f"{self.what} spoke {silent:.1f} s ago"


class BrokerWatch:
    """Asks the broker a cheap question every ``interval_s`` on a daemon thread; each answer marks ``health``.

    The question (``ask``, e.g. a metadata request) runs on its own thread so
    a broker that hangs stales readiness instead of blocking a service loop.
    """

    def __init__(self, health: Health, ask: Callable[[], object], interval_s: float = 10.0) -> None:
        self.health = health
        self.ask = ask
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-watch", daemon=True)

    def start(self) -> BrokerWatch:
        """Start asking; returns self."""
        self._thread.start()
        return self

    def stop(self, wait_s: float | None = None) -> None:
        """Stop after the question in flight (the thread is a daemon: it never holds up an exit).

        With ``wait_s``, wait up to that long for the thread to end, so the
        caller may then close what the question holds open.
        """
        self._stop.set()
        if wait_s is not None and self._thread.is_alive():
            self._thread.join(wait_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.ask()
            except Exception as error:  # noqa: BLE001 - any failure only means "no answer this time"
                log.debug("the broker did not answer the health question", extra={"error": str(error)})
            else:
                self.health.broker_answered()
            self._stop.wait(self.interval_s)
