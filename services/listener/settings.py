"""Listener configuration, read from ``LISTENER_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE

MIN_TOKEN_CHARS = 32


class ListenerSettings(BaseSettings):
    """How the listener matches brands, serves ingest and exposes metrics."""

    model_config = SettingsConfigDict(env_prefix="LISTENER_", frozen=True, extra="ignore")

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
    rate_limit_per_s: float = Field(default=500.0, ge=0, description="records/s per client address; 0 disables")
    rate_burst: int = Field(default=2000, ge=1, description="records a client may send at once")
    dedup_capacity: int = Field(default=1_000_000, ge=1)
    log_level: str = "INFO"

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
                f"(it has {len(token)}); set LISTENER_INGEST_ALLOW_ANONYMOUS=true to serve without one"
            )
        return token
