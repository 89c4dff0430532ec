"""Classifier configuration, read from ``CLASSIFIER_*`` environment variables."""

from __future__ import annotations

from pydantic import Field

from crisiswatch.sentiment.batching import BatchPolicy
from crisiswatch.sentiment.loading import ModelSettings


class ClassifierSettings(ModelSettings):
    """The model settings, plus how the service batches mentions, its consumer group, metrics and logs."""

    max_wait_ms: float = Field(default=50.0, ge=0)
    lookahead_batches: int = Field(
        default=BatchPolicy.lookahead_batches, ge=1, description="model batches gathered per pass, grouped by length"
    )
    group_id: str = Field(default="crisiswatch-classifier", description="group id; KAFKA_TOPIC_PREFIX is prepended")
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    log_level: str = "INFO"
