"""Kafka connection settings and client factories shared by the services.

The group defaults fit a 2-core laptop with the embedded broker: a dead
member is noticed within the 10 s session, and a live one may spend up to
60 s between fetches (the alerter drains 16 MiB fetches for 10,000 brands
in one go) before the group drops it; ``docs/operations.md`` states the
trade-off. Production overrides them through the environment (``KAFKA_*``).
Every client built here carries the same security settings
(:meth:`KafkaSettings.client_security`); the alerter's faust app gets them
from :func:`faust_credentials`.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.producer.future import FutureRecordMetadata
from pydantic import Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisiswatch.runtime.retry import Backoff, retry

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

log = logging.getLogger(__name__)


class KafkaSettings(BaseSettings):
    """Where the brokers are and how clients behave; read from ``KAFKA_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="ignore", hide_input_in_errors=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    topic_partitions: int = Field(
        default=1, ge=1, description="partitions for topics a service creates because they are missing"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = Field(default=None, min_length=1)
    sasl_password: SecretStr | None = Field(default=None, description="the SASL password; never logged")
    ssl_cafile: FilePath | None = Field(
        default=None, description="PEM bundle that signs the brokers' certificates (the system store when unset)"
    )
    session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="a member silent this long is dropped and its partitions move"
    )
    heartbeat_interval_ms: int = Field(default=1000, ge=100)
    max_poll_interval_ms: int = Field(
        default=60_000,
        ge=1000,
        description="a member that reads nothing this long is dropped; also how long a rebalance waits for members",
    )
    request_timeout_ms: int = Field(default=15_000, ge=1000)
    connect_deadline_s: float = Field(
        default=60.0, gt=0, description="give up (and exit) when brokers stay unreachable"
    )

    @model_validator(mode="after")
    def _credentials_match_the_protocol(self) -> KafkaSettings:
        """Refuse half a configuration instead of connecting with less protection than the operator asked for."""
        sasl = self.security_protocol.startswith("SASL_")
        has_credentials = self.sasl_username is not None or self.sasl_password is not None
        if sasl and (self.sasl_username is None or not self.password):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if has_credentials and not sasl:
            raise ValueError(
                f"KAFKA_SASL_USERNAME/_PASSWORD are set but KAFKA_SECURITY_PROTOCOL={self.security_protocol} "
                "would never send them; use SASL_SSL (or SASL_PLAINTEXT)"
            )
        if self.ssl_cafile is not None and not self.security_protocol.endswith("SSL"):
            raise ValueError(
                f"KAFKA_SSL_CAFILE is set but KAFKA_SECURITY_PROTOCOL={self.security_protocol} uses no TLS"
            )
        return self

    @property
    def servers(self) -> list[str]:
        """The bootstrap list as kafka-python wants it."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    @property
    def password(self) -> str:
        """The SASL password in clear, for handing to a client library; empty when none is set."""
        return self.sasl_password.get_secret_value() if self.sasl_password else ""

    def client_security(self) -> dict[str, Any]:
        """The kafka-python keyword arguments that authenticate and encrypt a connection, for every client type."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.password,
            }
        if self.ssl_cafile is not None:
            options["ssl_cafile"] = str(self.ssl_cafile)
        return options


def faust_credentials(settings: KafkaSettings) -> CredentialsT | None:
    """The faust ``broker_credentials`` for ``settings``; None for PLAINTEXT.

    The alerter's faust app and its kafka-python clients thus authenticate
    alike. faust is imported here, not at the top: only the alerter installs it.
    """
    import faust

    if settings.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.password,
        mechanism=settings.sasl_mechanism,
        ssl_context=context if settings.security_protocol == "SASL_SSL" else None,
    )


T = TypeVar("T")
_NO_BROKER = (KafkaConnectionError, KafkaTimeoutError)


def _bootstrap_ms(deadline_s: float) -> int:
    """How long one client may wait for its first broker: no longer than the connect deadline.

    kafka-python's own default, 30 s, would stretch a 5 s deadline to 30.
    """
    return int(min(deadline_s, 30.0) * 1000)


def _retry_until(deadline_s: float, what: str, attempt: Callable[[], T]) -> T:
    """Call ``attempt`` until a broker answers or ``deadline_s`` passes (then raise, so the pod restarts)."""
    try:
        return retry(attempt, retry_on=_NO_BROKER, backoff=Backoff.constant(0.5), deadline_s=deadline_s)
    except _NO_BROKER:
        raise ConnectionError(f"no Kafka broker answered for {what} within {deadline_s:.0f}s") from None


def make_producer(settings: KafkaSettings, client_id: str, connect_deadline_s: float | None = None) -> KafkaProducer:
    """An idempotent-minded producer: ``acks=all``, retries, ordered per partition."""
    deadline_s = connect_deadline_s or settings.connect_deadline_s
    return _retry_until(
        deadline_s,
        "the producer",
        lambda: KafkaProducer(
            bootstrap_servers=settings.servers,
            client_id=client_id,
            acks="all",
            retries=10,
            max_in_flight_requests_per_connection=1,
            linger_ms=5,
            request_timeout_ms=settings.request_timeout_ms,
            bootstrap_timeout_ms=_bootstrap_ms(deadline_s),
            **settings.client_security(),
        ),
    )


@dataclass(frozen=True)
class OutgoingRecord:
    """A record to produce: topic, key (None for unkeyed topics) and value."""

    topic: str
    key: bytes | None
    value: bytes


class NotAcknowledged(Exception):
    """Records the broker refused or did not acknowledge in time; the message is the first error."""

    def __init__(self, records: list[OutgoingRecord], error: str) -> None:
        super().__init__(error)
        self.records = records


class AckedProducer:
    """Produces records and confirms that the broker acknowledged every one before the caller moves on.

    ``KafkaProducer.flush`` returns even when records failed; their futures
    hold the errors. :meth:`confirm` sends failed or unconfirmed records again
    after a backoff, on a new client when the old one is in a fatal state
    (e.g. its producer id is unknown to a broker that restarted empty). A
    record may thus reach the topic twice, never zero times; consumers
    deduplicate by id.
    """

    def __init__(
        self,
        factory: Callable[[], KafkaProducer],
        on_failure: Callable[[str, int], None] | None = None,
        flush_timeout_s: float = 30.0,
        max_backoff_s: float = 30.0,
        initial: KafkaProducer | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._factory = factory
        self.producer = initial or factory()
        self.on_failure = on_failure
        self.flush_timeout_s = flush_timeout_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._unconfirmed: list[tuple[OutgoingRecord, FutureRecordMetadata | None]] = []
        self._renew_before_next_send = False

    @classmethod
    def for_settings(
        cls, settings: KafkaSettings, client_id: str, on_failure: Callable[[str, int], None] | None = None
    ) -> AckedProducer:
        """Connect as :func:`make_producer` does; replacement clients get a few seconds, not the start-up deadline."""
        return cls(
            lambda: make_producer(settings, client_id, connect_deadline_s=5.0),
            on_failure,
            initial=make_producer(settings, client_id),
        )

    def send(self, record: OutgoingRecord) -> None:
        """Send now; the record counts as delivered only once :meth:`confirm` says so."""
        if self._renew_before_next_send:
            self._renew_before_next_send = False
            self._renew()
        try:
            future = self.producer.send(record.topic, key=record.key, value=record.value)
        except KafkaError as error:
            log.debug("the producer refused a record", extra={"error": str(error)})
            future = None
        self._unconfirmed.append((record, future))

    def confirm(self, stopping: Callable[[], bool] = lambda: False, flush_timeout_s: float | None = None) -> bool:
        """Wait until every record sent so far is acknowledged, resending the refused ones.

        Returns True when all are acknowledged; False when ``stopping()``
        turned true first, in which case the unacknowledged records are
        dropped here and the caller must not treat them as delivered. Each
        wait for acknowledgements lasts at most ``flush_timeout_s``; between
        rounds the wait doubles from half a second up to ``max_backoff_s``.
        """
        resend: list[OutgoingRecord] = []

        def confirm_once() -> None:
            if resend:
                self._renew()
                for record in resend:
                    self.send(record)
                resend.clear()
            failed = self._flush(flush_timeout_s or self.flush_timeout_s)
            if failed:
                resend.extend(failed.records)
                raise failed

        try:
            retry(
                confirm_once,
                retry_on=NotAcknowledged,
                backoff=Backoff(first_s=0.5, max_s=self.max_backoff_s),
                give_up=stopping,
                on_failure=self._count_failure,
                log=log,
                message="the broker did not acknowledge records; sending them again",
                extra=lambda error: {"records": len(error.records) if isinstance(error, NotAcknowledged) else 0},
                sleep=self._sleep,
            )
        except NotAcknowledged as error:
            log.warning("the broker did not acknowledge records; giving up", extra={"records": len(error.records)})
            self._renew_before_next_send = True
            return False
        return True

    def _flush(self, timeout_s: float) -> NotAcknowledged | None:
        """Flush once; the records the broker refused or left unacknowledged, as an error, or None."""
        if not self._unconfirmed:
            return None
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError as error:
            log.debug("flush failed", extra={"error": str(error)})
        failed = [(r, f) for r, f in self._unconfirmed if f is None or not f.succeeded()]
        self._unconfirmed = []
        if not failed:
            return None
        first = failed[0][1]
        error = str(first.exception) if first is not None and first.is_done else "not acknowledged"
        return NotAcknowledged([record for record, _ in failed], error)

    def _count_failure(self, error: BaseException) -> None:
        if self.on_failure and isinstance(error, NotAcknowledged):
            self.on_failure(error.records[0].topic, len(error.records))

    def _renew(self) -> None:
        """Replace the client: one that hit a fatal error refuses every later record."""
        try:
            self.producer.close(timeout=1)
        except Exception as error:  # noqa: BLE001 - the old client is discarded either way
            log.debug("closing the failed producer", extra={"error": str(error)})
        try:
            self.producer = self._factory()
        except (ConnectionError, KafkaError) as error:
            log.warning("no broker yet for a new producer", extra={"error": str(error)})

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and close the client (one already closed by a failed renewal is left as it is)."""
        try:
            self.producer.flush(timeout=timeout_s)
            self.producer.close(timeout=timeout_s)
        except KafkaError as error:
            log.warning("the producer did not close cleanly", extra={"error": str(error)})


def make_consumer(settings: KafkaSettings, group_id: str, topics: Iterable[str], client_id: str) -> KafkaConsumer:
    """A group consumer with manual commits, reading from the earliest offset on first start."""
    consumer = _retry_until(
        settings.connect_deadline_s,
        "the consumer",
        lambda: KafkaConsumer(
            bootstrap_servers=settings.servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            request_timeout_ms=max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
            bootstrap_timeout_ms=_bootstrap_ms(settings.connect_deadline_s),
            **settings.client_security(),
        ),
    )
    consumer.subscribe(list(topics))
    return consumer


def ensure_topics(settings: KafkaSettings, topics: Iterable[str], partitions: int = 1) -> list[str]:
    """Create the missing topics; returns the names it created."""
    admin = _retry_until(
        settings.connect_deadline_s,
        "the admin client",
        lambda: KafkaAdminClient(
            bootstrap_servers=settings.servers,
            client_id="crisiswatch-admin",
            bootstrap_timeout_ms=_bootstrap_ms(settings.connect_deadline_s),
            **settings.client_security(),
        ),
    )
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t not in existing]
        created: list[str] = []
        for topic in wanted:
            try:
                admin.create_topics([NewTopic(name=topic, num_partitions=partitions, replication_factor=1)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        return created
    except KafkaError as error:
        raise ConnectionError(f"could not create topics {list(topics)}: {error}") from error
    finally:
        admin.close()


class _NoMetadata(Exception):
    """The broker does not know the topic's partitions yet."""


def partition_count(settings: KafkaSettings, topic: str) -> int:
    """How many partitions ``topic`` has (waiting up to the connect deadline for its metadata)."""
    consumer = _retry_until(
        settings.connect_deadline_s,
        "a metadata request",
        lambda: KafkaConsumer(
            bootstrap_servers=settings.servers,
            bootstrap_timeout_ms=_bootstrap_ms(settings.connect_deadline_s),
            **settings.client_security(),
        ),
    )

    def partitions() -> int:
        found = consumer.partitions_for_topic(topic)
        if not found:
            raise _NoMetadata(topic)
        return len(found)

    try:
        return retry(
            partitions, retry_on=_NoMetadata, backoff=Backoff.constant(0.5), deadline_s=settings.connect_deadline_s
        )
    except _NoMetadata:
        raise ConnectionError(f"topic {topic} has no partition metadata") from None
    finally:
        consumer.close()


class MetadataQuestion:
    """The cheapest question that proves a broker answers: a metadata request, on one long-lived client.

    Call it from one thread only (the health watch's); the client is made on
    the first call and made again after a failure. ``asked`` counts calls,
    answered or not.
    """

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.asked = 0
        self._consumer: KafkaConsumer | None = None

    def __call__(self) -> None:
        """Ask once; raises when the broker refuses, and blocks while none can be reached.

        Blocking is fine on the health watch's own thread: no answer means the
        last answer ages and readiness fails, which is the point.
        """
        self.asked += 1
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.settings.servers,
                    client_id=self.client_id,
                    bootstrap_timeout_ms=_bootstrap_ms(self.settings.connect_deadline_s),
                    request_timeout_ms=self.settings.request_timeout_ms,
                    **self.settings.client_security(),
                )
            self._consumer.topics()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close the client and its connection (a broker shutting down waits for open connections to go)."""
        if self._consumer is not None:
            self._consumer.close()
        self._consumer = None
