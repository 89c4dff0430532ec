"""The classifier's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, Info

from crisiswatch.runtime.metrics import BATCH_LATENCY_BUCKETS, end_to_end_histogram

SCORED = Counter(
    "crisiswatch_classifier_mentions_total",
    "Mentions handled, by outcome (scored; unscored: no model for the language; rejected)",
    ["outcome"],
)
NO_MODEL = "none"
"""The ``model`` label of mentions left unscored."""
LANGUAGE = Counter(
    "crisiswatch_classifier_language_mentions_total",
    "Mentions by language (languages the mapping names, the rest as 'other') and the model that scored them "
    "('none': unscored)",
    ["language", "model"],
)
SENTIMENT = Counter("crisiswatch_classifier_sentiment_total", "Scored mentions by predicted label", ["label"])
BATCH_SIZE = Histogram(
    "crisiswatch_classifier_batch_size", "Mentions per model batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
INFERENCE_SECONDS = Histogram(
    "crisiswatch_classifier_inference_seconds",
    "Model time per batch (tokenise + forward)",
    buckets=BATCH_LATENCY_BUCKETS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "crisiswatch_classifier_queue_wait_seconds",
    "Time a mention waited in the batch before scoring",
    buckets=BATCH_LATENCY_BUCKETS,
)
ERRORS = Counter(
    "crisiswatch_classifier_errors_total", "Failures by stage (decode, inference, produce, commit)", ["stage"]
)
MODEL = Info(
    "crisiswatch_classifier_model",
    "Each language's model, device, precision, engine, threads and the batching policy ('*': every other language)",
    ["language"],
)
END_TO_END = end_to_end_histogram("scored")
