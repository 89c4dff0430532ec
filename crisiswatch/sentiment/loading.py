"""Which model to load and how (``CLASSIFIER_*`` variables), and loading it.

Shared by the classifier service and the model tools (``crisiswatch classify``,
``crisiswatch model eval``), so a file is scored with exactly the model, device
and precision the service would use. torch and transformers are imported only
by :func:`load_model`, so reading the settings stays cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from .model import SentimentModel

log = logging.getLogger("crisiswatch.classifier")


class ModelSettings(BaseSettings):
    """Which model, where it runs, and how many texts go through it at once."""

    model_config = SettingsConfigDict(
        env_prefix="CLASSIFIER_", frozen=True, extra="ignore", hide_input_in_errors=True, protected_namespaces=()
    )

    model: str = Field(default="default", description="'default', a local path or a Hugging Face model id")
    device: str = Field(default="auto", description="auto, cpu or cuda[:N]")
    dtype: str = Field(default="auto", description="auto, fp32, bf16, fp16, or int8 (CPU only)")
    engine: str = Field(default="auto", description="auto, torch, or onnxruntime (fp32/int8 on the CPU)")
    threads: int = Field(default=0, ge=0, description="CPU threads for the model; 0 keeps torch's default")
    max_length: int = Field(default=0, ge=0, description="token limit per text; 0 uses the model's own")
    max_batch_size: int = Field(default=64, ge=1)


def load_model(settings: ModelSettings) -> SentimentModel:
    """Load the configured model on the chosen device and precision, and say what was chosen.

    What is loaded now lives as long as the process, so it is frozen out of
    the cyclic garbage collector (``freeze_loaded_objects``).
    """
    from .model import SentimentModel, choose_runtime, freeze_loaded_objects

    runtime = choose_runtime(settings.device, settings.dtype, settings.threads, settings.engine)
    model = SentimentModel.load(settings.model, runtime, settings.max_length)
    freeze_loaded_objects()
    log.info(
        "model loaded",
        extra={
            "model": model.name,
            "device": runtime.device,
            "dtype": runtime.dtype,
            "engine": runtime.engine,
            "threads": runtime.threads,
        },
    )
    return model
