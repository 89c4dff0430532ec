"""Listener configuration, read from ``LISTENER_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE


class ListenerSettings(BaseSettings):
    """How the listener matches brands, serves ingest and exposes metrics."""

    model_config = SettingsConfigDict(env_prefix="LISTENER_", frozen=True, extra="ignore")

    brands_file: Path = DEFAULT_BRANDS_FILE
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(default=8080, ge=0, le=65535)
    ingest_token: SecretStr | None = Field(default=None, description="bearer token required by POST /v1/mentions")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch: int = Field(default=1000, ge=1)
    ack_timeout_s: float = Field(
        default=10.0, gt=0, description="how long a batch waits for the broker before the answer is 503"
    )
    rate_limit_per_s: float = Field(default=500.0, ge=0, description="records/s per client address; 0 disables")
    rate_burst: int = Field(default=2000, ge=1, description="records a client may send at once")
    dedup_capacity: int = Field(default=1_000_000, ge=1)
    log_level: str = "INFO"
