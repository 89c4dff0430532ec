"""Listener configuration, read from ``LISTENER_*`` environment variables."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE
from crisiswatch.ingest.records import EventTimeBounds

MIN_TOKEN_CHARS = 32
DEFAULT_CLIENT = "default"
"""The client name of the single ``LISTENER_INGEST_TOKEN``."""
CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
"""What an ingest client may be called: its name is a metric label and a mention's source."""


class ListenerSettings(BaseSettings):
    """How the listener matches brands, serves ingest and exposes metrics."""

    model_config = SettingsConfigDict(env_prefix="LISTENER_", frozen=True, extra="ignore", hide_input_in_errors=True)

    brands_file: Path = DEFAULT_BRANDS_FILE
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(default=8080, ge=0, le=65535)
    ingest_token: SecretStr | None = Field(
        default=None, description=f"bearer token required by POST /v1/mentions (at least {MIN_TOKEN_CHARS} characters)"
    )
    ingest_allow_anonymous: bool = Field(
        default=False, description="serve ingest without a token (only behind something else that authenticates)"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch: int = Field(default=1000, ge=1)
    ack_timeout_s: float = Field(
        default=10.0, gt=0, description="how long a batch waits for the broker before the answer is 503"
    )
    rate_limit_per_s: float = Field(
        default=500.0, ge=0, description="records/s per client (its address when anonymous); 0 disables"
    )
    rate_burst: int = Field(default=2000, ge=1, description="records a client may send at once")
    dedup_capacity: int = Field(default=1_000_000, ge=1)
    max_future_minutes: float = Field(
        default=5.0,
        ge=0,
        le=1440,
        description="how far ahead of this clock a created_at may be (a source's clock skew)",
    )
    max_age_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 365,
        description="how old a live mention may be; older ones need a replay with --history",
    )
    log_level: str = "INFO"
    ingest_tokens_file: Path | None = Field(
        default=None,
        description='JSON object {"client-name": "token", ...} of the clients allowed to ingest (a mounted secret)',
    )
    header_timeout_s: float = Field(
        default=65.0,
        gt=0,
        description="a connection's time to send complete request headers, from opening or from its last answer; "
        "also the keep-alive idle limit, so keep it above the ingress's upstream keep-alive (nginx: 60 s)",
    )
    body_timeout_s: float = Field(default=30.0, gt=0, description="a request's time to send its whole body (408)")
    max_concurrent_requests: int = Field(
        default=16, ge=1, description="ingest requests handled at once; more are answered 503 with Retry-After"
    )

    bluesky_jetstream_url: str = Field(
        default="wss://jetstream2.us-east.bsky.network/subscribe",
        description="the Jetstream instance `crisiswatch listener bluesky` reads (any of Bluesky's four, or your own)",
    )
    mastodon_instance: str | None = Field(
        default=None,
        description="the Mastodon server `crisiswatch listener mastodon` reads, e.g. https://mastodon.social",
    )
    mastodon_timeline: str = Field(
        default="public",
        pattern=r"^(public|public:local|hashtag:[^\s/?#]{1,100})$",
        description="public, public:local, or hashtag:NAME",
    )
    mastodon_token: SecretStr | None = Field(
        default=None, description="an access token, for servers whose public streams need one (never logged)"
    )
    mastodon_backfill_pages: int = Field(
        default=10, ge=0, le=1000, description="timeline pages (40 statuses) read after a gap, from the cursor on"
    )
    stream_cursor_file: Path | None = Field(
        default=None,
        description="where a live source keeps the last position the broker acknowledged "
        "(default .crisiswatch/cursors/SOURCE.json); on a volume that outlives the pod",
    )
    stream_queue_size: int = Field(
        default=1000, ge=1, description="frames read ahead of the broker; when full, the source stops reading"
    )
    stream_batch: int = Field(default=500, ge=1, description="frames produced and acknowledged together")
    stream_max_frame_bytes: int = Field(
        default=65_536, ge=1024, description="a larger frame is refused (dead letter, too_large) unread"
    )
    stream_max_message_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="a larger WebSocket message or SSE line ends the connection (then reconnects)",
    )
    stream_silent_after_s: float = Field(
        default=120.0, gt=0, description="a stream silent this long reconnects, and /readyz fails until it speaks"
    )
    stream_backoff_max_s: float = Field(default=60.0, gt=0, description="the longest wait between reconnections")
    stream_cursor_save_s: float = Field(
        default=1.0, ge=0, description="how often the acknowledged position is written (and on every stop)"
    )

    def event_time_bounds(
        self, history: bool = False, span: tuple[datetime, datetime] | None = None
    ) -> EventTimeBounds:
        """The accepted span of ``created_at``: live ingest against this clock, or a replay of history (``history``).

        History is judged against its recording's ``span`` (see
        :func:`crisiswatch.ingest.records.recording_span`), or anything the wire
        contract takes, never against the clock.
        """
        future = timedelta(minutes=self.max_future_minutes)
        if history:
            return EventTimeBounds.history(span)
        hint = "replay older history with `crisiswatch listener replay --history`"
        return EventTimeBounds(future, timedelta(hours=self.max_age_hours), hint)

    def checked_ingest_token(self) -> str | None:
        """The ingest token; None only when anonymous ingest was asked for explicitly.

        Raises ValueError when the token is missing or short: an endpoint that
        anyone who reaches it can write to must be a decision, not a default.
        """
        token = self.ingest_token.get_secret_value() if self.ingest_token else ""
        if self.ingest_allow_anonymous and not token:
            return None
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"LISTENER_INGEST_TOKEN must be set to at least {MIN_TOKEN_CHARS} characters "
                f"(it has {len(token)}), or LISTENER_INGEST_TOKENS_FILE name the clients; "
                "set LISTENER_INGEST_ALLOW_ANONYMOUS=true to serve without one"
            )
        return token

    def ingest_clients(self) -> dict[str, str] | None:
        """The clients allowed to ingest, name to token; None only when anonymous ingest was asked for explicitly.

        Clients come from ``LISTENER_INGEST_TOKENS_FILE``; a single
        ``LISTENER_INGEST_TOKEN`` is the client named ``default``. Raises
        ValueError, naming the client but never its token, when a name is not
        a plain identifier (names become metric labels), a token is shorter
        than ``MIN_TOKEN_CHARS`` or two clients share a token.
        """
        clients = _read_clients(self.ingest_tokens_file) if self.ingest_tokens_file else {}
        if not clients or (self.ingest_token and self.ingest_token.get_secret_value()):
            token = self.checked_ingest_token()
            if token is None:
                return None
            if DEFAULT_CLIENT in clients:
                raise ValueError(
                    f"LISTENER_INGEST_TOKEN is the client {DEFAULT_CLIENT!r}; LISTENER_INGEST_TOKENS_FILE names it too"
                )
            clients[DEFAULT_CLIENT] = token
        for name, token in clients.items():
            if not CLIENT_NAME.fullmatch(name):
                raise ValueError(f"ingest client name {name[:80]!r} must match {CLIENT_NAME.pattern}")
            if len(token) < MIN_TOKEN_CHARS:
                raise ValueError(
                    f"the token of ingest client {name!r} has {len(token)} characters; at least {MIN_TOKEN_CHARS}"
                )
        if len(set(clients.values())) < len(clients):
            raise ValueError("two ingest clients share a token; give each its own")
        return clients


def _read_clients(path: Path) -> dict[str, str]:
    """The ``{"client-name": "token"}`` object in ``path``; errors say where, never what a token is."""
    try:
        clients = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"LISTENER_INGEST_TOKENS_FILE {path} is not a readable JSON object: {error}") from None
    if not isinstance(clients, dict) or not all(isinstance(t, str) for t in clients.values()):
        raise ValueError(f'LISTENER_INGEST_TOKENS_FILE {path} must hold one object {{"client-name": "token", ...}}')
    if not clients:
        raise ValueError(f"LISTENER_INGEST_TOKENS_FILE {path} names no clients")
    return clients
