from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from crisiswatch.contracts.schemas import Sentiment
from crisiswatch.modeling.evaluation import classification_report
from crisiswatch.sentiment.batching import BatchPolicy, plan_batches
from crisiswatch.sentiment.labels import LabelMappingError, map_labels
from crisiswatch.sentiment.textprep import decode_escapes, normalise_for_model, with_normalisation

from ..conftest import examples

N, U, P = Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "negative", 1: "neutral", 2: "positive"}, [N, U, P]),
        ({0: "NEG", 1: "NEU", 2: "POS"}, [N, U, P]),
        ({0: "Positive", 1: "Negative"}, [P, N]),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, [N, U, P]),
        ({0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"}, [N, N, U, P, P]),
    ],
)
def test_checkpoint_labels_map_onto_three_classes(id2label: dict[int, str], expected: list[Sentiment]) -> None:
    assert map_labels(id2label) == expected


@pytest.mark.parametrize("id2label", [{0: "joy", 1: "anger"}, {0: "LABEL_0", 1: "LABEL_1"}, {0: "neutral"}])
def test_impossible_label_mappings_fail_clearly(id2label: dict[int, str]) -> None:
    with pytest.raises(LabelMappingError, match="cannot map the model's labels"):
        map_labels(id2label)


def test_batches_group_similar_lengths_and_cover_every_item_once() -> None:
    lengths = [30, 5, 12, 6, 31, 11, 4]
    batches = plan_batches(lengths, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 3 for b in batches)
    assert [[lengths[i] for i in b] for b in batches] == [[4, 5, 6], [11, 12, 30], [31]]


def test_with_a_cost_per_batch_the_cuts_fall_where_the_lengths_jump() -> None:
    lengths = [30, 4, 31, 5, 12, 6, 11, 29]
    batches = plan_batches(lengths, max_batch_size=3, batch_cost_tokens=10)
    assert [[lengths[i] for i in b] for b in batches] == [[4, 5, 6], [11, 12], [29, 30, 31]]


@given(st.lists(st.integers(1, 64), max_size=300), st.integers(1, 70), st.integers(0, 200))
def test_cheapest_cuts_cover_every_item_once_and_never_pad_more_than_even_cuts(
    lengths: list[int], max_batch_size: int, batch_cost_tokens: int
) -> None:
    def cost(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) + batch_cost_tokens for b in batches)

    planned = plan_batches(lengths, max_batch_size, batch_cost_tokens)
    assert sorted(i for b in planned for i in b) == list(range(len(lengths)))
    assert all(0 < len(b) <= max_batch_size for b in planned)
    assert cost(planned) <= cost(plan_batches(lengths, max_batch_size))


def test_batch_policy_flushes_on_size_or_latency_cap() -> None:
    policy = BatchPolicy(max_batch_size=4, max_wait_s=0.05, lookahead_batches=2)
    assert not policy.should_flush(0, 10)
    assert not policy.should_flush(2, 0.01)
    assert policy.should_flush(2, 0.05)
    assert not policy.should_flush(4, 0.0)
    assert policy.should_flush(8, 0.0)
    assert policy.time_left(2, 0.03) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchPolicy(max_batch_size=0)
    with pytest.raises(ValueError, match="lookahead_batches"):
        BatchPolicy(lookahead_batches=0)


def test_runtime_choice_is_overridable_and_refuses_the_impossible() -> None:
    from crisiswatch.sentiment.model import choose_runtime  # torch loads here, not when the module is collected

    assert choose_runtime("cpu", "fp32").dtype == "fp32"
    assert choose_runtime("cpu", "auto").dtype in {"bf16", "fp32"}
    with pytest.raises(ValueError, match="unknown device"):
        choose_runtime("tpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        choose_runtime("cpu", "int3")


def test_the_engine_is_onnxruntime_for_int8_and_torch_otherwise_unless_asked() -> None:
    from crisiswatch.sentiment.model import choose_runtime

    assert choose_runtime("cpu", "int8").engine == "onnxruntime"
    assert choose_runtime("cpu", "fp32").engine == "torch"
    assert choose_runtime("cpu", "bf16").engine == "torch"
    assert choose_runtime("cpu", "fp32", engine="onnxruntime").engine == "onnxruntime"
    with pytest.raises(ValueError, match="int8 runs on engine onnxruntime"):
        choose_runtime("cpu", "int8", engine="torch")
    with pytest.raises(ValueError, match="fp32 or int8 on the CPU"):
        choose_runtime("cpu", "bf16", engine="onnxruntime")
    with pytest.raises(ValueError, match="unknown engine"):
        choose_runtime("cpu", "fp32", engine="tensorrt")


def test_tweet_normalisation_matches_training() -> None:
    assert normalise_for_model("@Acme_Help why?\\u002c see https://t.co/x  now") == "@user why?, see http now"
    assert normalise_for_model("mail me@acme.com or @@x, @José\u3000\x1c") == "mail me@acme.com or @@x, @useré"
    assert normalise_for_model("ok \\ud83d\\ude00 \\ud83d!") == "ok \U0001f600 \ufffd!"


@functools.cache
def tokenizers() -> tuple[Tokenizer, Tokenizer]:
    """The base tokenizer and the one normalising inside Rust (loaded on first use: the module imports torch)."""
    from crisiswatch.sentiment.network import base_model_dir

    base = Tokenizer.from_file(str(base_model_dir() / "tokenizer.json"))
    return base, with_normalisation(base)


TWEET_PIECES = st.one_of(
    st.sampled_from(["@", "_", "a", "Z", "9", " ", "\t", "\\u00e9", "http://", "www.", ".", "/"]),
    st.characters(codec="utf-8"),
    st.from_regex(r"\\u[dD][0-9a-fA-F]{3}", fullmatch=True),
)
TWEETISH = st.lists(TWEET_PIECES, max_size=40).map("".join)


@settings(max_examples=examples(1500), deadline=None)
@given(TWEETISH)
def test_the_tokenizer_normalises_exactly_like_the_python_reference(text: str) -> None:
    """Batches are normalised inside the Rust tokenizer; the ids must not depend on which side did it."""
    base, normalising = tokenizers()
    expected = base.encode(normalise_for_model(text)).ids
    assert normalising.encode(decode_escapes(text)).ids == expected


def test_macro_recall_weights_every_class_equally() -> None:
    truth = [N, N, U, U, U, U, P, P]
    predicted = [N, U, U, U, U, U, P, P]
    report = classification_report(truth, predicted)
    assert report.macro_recall == pytest.approx((0.5 + 1 + 1) / 3)
    assert report.accuracy == pytest.approx(7 / 8)
    assert report.confusion.tolist() == [[1, 1, 0], [0, 4, 0], [0, 0, 2]]
