"""Classifier configuration, read from ``CLASSIFIER_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisiswatch.sentiment.batching import BatchPolicy


class ClassifierSettings(BaseSettings):
    """Which model, where it runs, and how mentions are batched."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", frozen=True, extra="ignore", protected_namespaces=())

    model: str = Field(default="default", description="'default', a local path or a Hugging Face model id")
    device: str = Field(default="auto", description="auto, cpu or cuda[:N]")
    dtype: str = Field(default="auto", description="auto, fp32, bf16, fp16, or int8 (CPU only)")
    engine: str = Field(default="auto", description="auto, torch, or onnxruntime (fp32/int8 on the CPU)")
    threads: int = Field(default=0, ge=0, description="CPU threads for the model; 0 keeps torch's default")
    max_length: int = Field(default=0, ge=0, description="token limit per text; 0 uses the model's own")
    max_batch_size: int = Field(default=64, ge=1)
    max_wait_ms: float = Field(default=50.0, ge=0)
    lookahead_batches: int = Field(
        default=BatchPolicy.lookahead_batches, ge=1, description="model batches gathered per pass, grouped by length"
    )
    group_id: str = Field(default="crisiswatch-classifier", description="group id; KAFKA_TOPIC_PREFIX is prepended")
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    log_level: str = "INFO"
