"""Which models to load and how (``CLASSIFIER_*`` variables), and loading them.

Shared by the classifier service and the model tools (``crisiswatch classify``,
``crisiswatch model eval``), so a file is scored with exactly the models, device
and precision the service would use. torch, transformers and scikit-learn are
imported only when a model is loaded, so reading the settings stays cheap.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisiswatch.contracts.schemas import SentimentScores, primary_language

from .labels import as_scores
from .routing import ANY_LANGUAGE, LanguageModels, Scorer, parse_routes, read_routes_file

if TYPE_CHECKING:
    from .model import Runtime, SentimentModel
    from .ngram import NgramSentimentModel

log = logging.getLogger("crisiswatch.classifier")


CONFIGURED_MODEL = "default"
"""In a mapping, the model ``CLASSIFIER_MODEL`` names (by default the shipped English MiniLM)."""
HEBREW_MODEL = "hebrew"
"""In a mapping, the shipped Hebrew n-gram model (thousands of texts a second on one core)."""
HEBREW_BLEND_MODEL = "hebrew-e5"
"""In a mapping, the shipped Hebrew n-gram model blended with an e5 head: half a point better in CV, about
a hundred times slower (docs/languages.md), so not the default."""
HEBREW_FINETUNED_MODEL = "hebrew-e5-finetuned"
"""Not shipped: e5 with its top layers fine-tuned on Hebrew came second in cross-validation (docs/languages.md),
so a mapping names the folder ``crisiswatch model finetune-e5 --out DIR`` writes; this name only says so."""
MULTILINGUAL_MODEL = "multilingual"
"""In a mapping, the shipped multilingual head over multilingual-e5-small (about 100 languages)."""
DEFAULT_ROUTES = {
    "en": CONFIGURED_MODEL,
    "und": CONFIGURED_MODEL,
    "he": HEBREW_MODEL,
    ANY_LANGUAGE: MULTILINGUAL_MODEL,
}
"""English, and text too short to tell (mostly English here), to the English model; Hebrew to its own; every
other language to the multilingual model, so no language is left unscored."""


class ModelSettings(BaseSettings):
    """Which model, where it runs, and how many texts go through it at once."""

    model_config = SettingsConfigDict(
        env_prefix="CLASSIFIER_", frozen=True, extra="ignore", hide_input_in_errors=True, protected_namespaces=()
    )

    model: str = Field(
        default="default",
        description="the English model: 'default' (shipped MiniLM), a local path or a Hugging Face model id",
    )
    models: dict[str, str] = Field(
        default=DEFAULT_ROUTES,
        description="language → model, as JSON; 'default' is CLASSIFIER_MODEL, 'hebrew' the shipped Hebrew "
        "model, '*' every other language (unmapped languages are left unscored)",
    )
    models_file: Path | None = Field(
        default=None, description="a TOML file whose [models] table replaces CLASSIFIER_MODELS"
    )
    device: str = Field(default="auto", description="auto, cpu or cuda[:N]")
    dtype: str = Field(default="auto", description="auto, fp32, bf16, fp16, or int8 (CPU only)")
    engine: str = Field(default="auto", description="auto, torch, or onnxruntime (fp32/int8 on the CPU)")
    threads: int = Field(default=0, ge=0, description="CPU threads for the model; 0 keeps torch's default")
    max_length: int = Field(default=0, ge=0, description="token limit per text; 0 uses the model's own")
    max_batch_size: int = Field(default=64, ge=1)

    @field_validator("models")
    @classmethod
    def _checked_routes(cls, value: dict[str, str]) -> dict[str, str]:
        return parse_routes(value)

    def routes(self) -> dict[str, str]:
        """The language → model-reference mapping in force (the TOML file's, when one is named)."""
        return read_routes_file(self.models_file) if self.models_file else dict(self.models)


def load_model(settings: ModelSettings) -> SentimentModel:
    """Load ``CLASSIFIER_MODEL`` on the chosen device and precision, and say what was chosen."""
    from .model import SentimentModel, choose_runtime

    runtime = choose_runtime(settings.device, settings.dtype, settings.threads, settings.engine)
    model = SentimentModel.load(settings.model, runtime, settings.max_length)
    log.info("model loaded", extra=model.describe())
    return model


def load_models(settings: ModelSettings, languages: Collection[str] | None = None) -> LanguageModels:
    """Load every model the language mapping names, each once, and say which language goes where.

    With ``languages``, only the models those languages are routed to (a
    tool scoring one language need not load the others). What is loaded
    lives as long as the process, so it is frozen out of the cyclic garbage
    collector (``freeze_loaded_objects``). Raises ``ValueError`` for a
    mapping that cannot be read, and whatever a loader raises for a model
    that cannot be loaded: a classifier that cannot score a configured
    language must not start.
    """
    routes = settings.routes()
    if languages is not None:
        wanted = {primary_language(language) for language in languages}
        mapped = {language: ref for language, ref in routes.items() if language in wanted}
        if ANY_LANGUAGE in routes and not wanted <= mapped.keys():
            mapped[ANY_LANGUAGE] = routes[ANY_LANGUAGE]
        routes = mapped
    loaded: dict[str, Scorer] = {}
    runtime: Runtime | None = None
    for reference in dict.fromkeys(routes.values()):
        if reference == CONFIGURED_MODEL:
            loaded[reference] = load_model(settings)
            continue
        scorer = _load_ngram(reference) or _load_head(reference, settings) or _load_finetuned(reference, settings)
        if scorer is None:
            from .model import SentimentModel, choose_runtime

            runtime = runtime or choose_runtime(settings.device, settings.dtype, settings.threads, settings.engine)
            scorer = SentimentModel.load(reference, runtime, settings.max_length)
            log.info("model loaded", extra=scorer.describe())
        loaded[reference] = scorer
    models = LanguageModels(
        {language: loaded[ref] for language, ref in routes.items() if language != ANY_LANGUAGE},
        loaded.get(routes.get(ANY_LANGUAGE, "")),
    )
    freeze_loaded_objects()
    log.info("language routes", extra={"routes": {language: loaded[ref].name for language, ref in routes.items()}})
    return models


def freeze_loaded_objects() -> None:
    """Exempt every object alive now (libraries, the models) from future garbage-collector scans.

    After torch and transformers are imported some 400k objects are tracked,
    and each full collection walks them all again; scoring creates enough
    short-lived objects per mention that those walks took about a third of a
    GPU classifier's time. Call once, after loading, in a long-running process.
    """
    gc.collect()
    gc.freeze()


def _load_ngram(reference: str) -> Scorer | None:
    """The shipped Hebrew n-gram model or an n-gram artifact directory; ``None`` for any other reference."""
    from .ngram import HEBREW_MODEL_DIR, NgramSentimentModel, is_ngram_artifact

    if reference == HEBREW_MODEL:
        return NgramScorer(NgramSentimentModel.load(HEBREW_MODEL_DIR))
    if is_ngram_artifact(Path(reference)):
        return NgramScorer(NgramSentimentModel.load(Path(reference)))
    return None


def _load_head(reference: str, settings: ModelSettings) -> Scorer | None:
    """A shipped e5 head (``multilingual``, ``hebrew-e5``) or an e5 head directory; ``None`` for any other reference."""
    from .e5_head import HEBREW_HEAD_DIR, MULTILINGUAL_HEAD_DIR, E5HeadScorer, is_head_artifact

    shipped = {MULTILINGUAL_MODEL: MULTILINGUAL_HEAD_DIR, HEBREW_BLEND_MODEL: HEBREW_HEAD_DIR}
    directory = shipped.get(reference, Path(reference))
    if not is_head_artifact(directory):
        return None
    scorer = E5HeadScorer.load(directory, settings.threads, settings.dtype)
    log.info("model loaded", extra=scorer.describe())
    return scorer


def _load_finetuned(reference: str, settings: ModelSettings) -> Scorer | None:
    """A fine-tuned e5 directory from ``crisiswatch model finetune-e5``; ``None`` for any other reference.

    Raises ``ValueError`` for ``hebrew-e5-finetuned``, which is not shipped, saying how to build it.
    """
    from .e5_finetuned import FinetunedE5Scorer, is_finetuned_artifact

    directory = Path(reference)
    if not is_finetuned_artifact(directory):
        if reference == HEBREW_FINETUNED_MODEL:
            raise ValueError(
                f"{HEBREW_FINETUNED_MODEL!r} is not shipped: build it with `crisiswatch model finetune-e5 --out DIR`"
                " and map the language to DIR (docs/languages.md, 'Fine-tuning e5 for Hebrew')"
            )
        return None
    scorer = FinetunedE5Scorer(directory, settings.threads)
    log.info("model loaded", extra=scorer.describe())
    return scorer


class NgramScorer:
    """An n-gram model as a :class:`Scorer`; it runs on the CPU in the calling thread."""

    def __init__(self, model: NgramSentimentModel) -> None:
        self.model = model
        self.name = model.name

    def predict(self, texts: Sequence[str], max_batch_size: int = 64) -> list[SentimentScores]:
        """Scores for each text, in input order, ``max_batch_size`` texts per vectorised call."""
        scores: list[SentimentScores] = []
        for start in range(0, len(texts), max_batch_size):
            scores.extend(as_scores(self.model.predict_probabilities(texts[start : start + max_batch_size])))
        return scores

    def describe(self) -> dict[str, str]:
        """Where it runs, in the terms of the transformer models' info."""
        return {"model": self.name, "device": "cpu", "dtype": "fp64", "engine": "scikit-learn", "threads": "1"}
