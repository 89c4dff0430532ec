"""Alerter configuration: ``ALERTER_*`` for the stream app, ``SLACK_*`` for delivery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisiswatch.contracts.schemas import Severity
from crisiswatch.detection.config import Sensitivity
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE

from .replies import DEFAULT_TEMPLATES_FILE

TeamId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^T[A-Z0-9]{2,}$")]
"""A Slack workspace id: ids, not names, are what a press carries, so a name would never match."""
UserId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[UW][A-Z0-9]{2,}$")]
UsergroupId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^S[A-Z0-9]{2,}$")]


class AlerterSettings(BaseSettings):
    """Windows, detector sensitivity, state and metrics of the alerter."""

    model_config = SettingsConfigDict(env_prefix="ALERTER_", frozen=True, extra="ignore", hide_input_in_errors=True)

    app_id: str = Field(default="crisiswatch-alerter", description="faust app id, prefixed by KAFKA_TOPIC_PREFIX")
    bucket_minutes: float = Field(default=1.0, gt=0)
    lateness_minutes: float = Field(default=2.0, ge=0)
    max_future_minutes: float = Field(
        default=5.0,
        ge=0,
        le=1440,
        description="how far ahead of this clock a mention may be dated; later ones are dead-lettered, and a brand's "
        "watermark never passes the clock",
    )
    sensitivity: Sensitivity = Sensitivity.BALANCED
    data_dir: Path = Path(".crisiswatch/alerter")
    alerts_file: Path = Path("alerts.jsonl")
    templates_file: Path = Field(default=DEFAULT_TEMPLATES_FILE, description="reply templates (TOML)")
    brands_file: Path = Field(
        default=DEFAULT_BRANDS_FILE, description="the brands file whose sectors say which brands surge together"
    )
    metrics_port: int = Field(default=9103, ge=0, le=65535)
    metric_brands_max: int = Field(default=500, ge=1, description="per-brand series beyond this read `_other`")
    lag_refresh_seconds: float = Field(default=15.0, gt=0)
    batch_max: int = Field(default=2000, ge=1, description="records per batch: state is written once per batch")
    batch_seconds: float = Field(
        default=0.5, gt=0, le=10, description="longest a record waits for its batch to fill (adds to alert latency)"
    )
    deliveries_retention_days: float = Field(
        default=7.0, gt=0, description="how long a resolved incident's delivery record is kept (dedup of replays)"
    )
    deliveries_sweep_seconds: float = Field(default=3600.0, gt=0)
    changelog_replicas: int = Field(
        default=1,
        ge=1,
        description="replicas of the state tables' changelog topics: 1 on the embedded broker, 3 on a real cluster "
        "(with min.insync.replicas 2, fewer replicas than that refuse every state write)",
    )
    log_level: str = "INFO"


class LlmSettings(BaseSettings):
    """An OpenAI-compatible endpoint that may refine drafted replies; off unless ``url`` is set."""

    model_config = SettingsConfigDict(env_prefix="ALERTER_LLM_", frozen=True, extra="ignore", hide_input_in_errors=True)

    url: str | None = Field(default=None, description="base URL, e.g. http://127.0.0.1:8000/v1")
    model: str = "default"
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class SlackSettings(BaseSettings):
    """Where alerts go in Slack; without a token or webhook they go to the console and ``alerts_file``."""

    model_config = SettingsConfigDict(env_prefix="SLACK_", frozen=True, extra="ignore", hide_input_in_errors=True)

    bot_token: SecretStr | None = None
    channel: str | None = Field(default=None, description="default channel id")
    channel_by_brand: dict[str, str] = Field(default_factory=dict, description='JSON {"brand-id": "C0..."}')
    channel_by_severity: dict[Severity, str] = Field(default_factory=dict, description='JSON {"critical": "C0..."}')
    critical_mention: str | None = Field(default=None, description='who critical alerts page, e.g. "<!subteam^S0123>"')
    webhook_url: SecretStr | None = None
    app_token: SecretStr | None = Field(
        default=None, description="app-level token (xapp-...) for Socket Mode: enables the lifecycle buttons"
    )
    api_url: str = "https://slack.com/api/"
    team_id: TeamId | None = Field(
        default=None,
        description="the workspace (T0...) whose members may press an alert's buttons; unset: every press is refused",
    )
    allowed_users: list[UserId] = Field(
        default_factory=list,
        description='JSON ["U0..."]: who may snooze, resolve or close as not a crisis '
        "(with SLACK_ALLOWED_USERGROUPS; both empty: anyone in the team and the alert channels)",
    )
    allowed_usergroups: list[UsergroupId] = Field(
        default_factory=list,
        description='JSON ["S0..."]: user groups whose members may press those buttons too '
        "(needs the usergroups:read scope; members are re-read every minute)",
    )
    fallback_channel: str | None = Field(
        default=None, description="where an alert goes when its own channel refuses it for good (channel_not_found...)"
    )

    @property
    def interactive(self) -> bool:
        """Whether alerts carry buttons: bot mode with Socket Mode to receive the presses."""
        return self.mode == "bot" and self.app_token is not None

    @property
    def mode(self) -> str:
        """``bot`` (token + channel), ``webhook``, or ``console``."""
        if self.bot_token and self.channel:
            return "bot"
        if self.webhook_url:
            return "webhook"
        return "console"
