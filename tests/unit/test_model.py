"""The real models: the shipped default, a locally built Hugging Face checkpoint, and an accuracy floor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from crisiswatch.contracts.schemas import Sentiment
from crisiswatch.modeling.evaluation import classification_report
from crisiswatch.modeling.labelled import read_labelled

from ..conftest import SHARED_DATA

if TYPE_CHECKING:
    from crisiswatch.sentiment.model import SentimentModel

# torch and transformers load inside the tests and fixtures that run the models, not when the module is collected:
# every pytest-xdist worker collects every module, and the import costs seconds (see MODEL_MODULES in conftest.py).

SEMEVAL = SHARED_DATA / "sentiment" / "english" / "semeval_2013_2016_train.tsv"


@pytest.fixture(scope="module")
def default_model() -> SentimentModel:
    from crisiswatch.sentiment.model import SentimentModel, choose_runtime

    return SentimentModel.load("default", choose_runtime("cpu", "fp32", engine="torch"))


@pytest.fixture(scope="module")
def exported_model() -> SentimentModel:
    from crisiswatch.sentiment.model import SentimentModel, choose_runtime

    return SentimentModel.load("default", choose_runtime("cpu", "fp32", engine="onnxruntime"))


def varied_texts(count: int) -> list[str]:
    """Texts from one token to the length cap, so batches mix heavy and no padding."""
    sentence = "the flight was late again and nobody at the desk could tell us anything useful"
    words = sentence.split()
    return [" ".join(words[: 1 + (i * 7) % len(words)]) * (1 + i % 5) for i in range(count)] + [""]


def test_the_default_model_loads_offline_and_reads_obvious_tweets(default_model: SentimentModel) -> None:
    scores = default_model.predict(
        [
            "@NimbusBank your app has been down all day, useless and infuriating",
            "What time does the Acme Air desk open tomorrow?",
            "Loving my new Voltcell phone, best purchase this year!",
        ]
    )
    assert [s.label for s in scores] == [Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE]
    for s in scores:
        assert s.negative + s.neutral + s.positive == pytest.approx(1.0, abs=1e-4)


def test_predictions_come_back_in_input_order_whatever_the_batching(default_model: SentimentModel) -> None:
    texts = ["awful, terrible, broken", "ok", "I love this so much, thank you!!! " * 3, "what?"]
    one_by_one = [default_model.predict([t])[0].label for t in texts]
    assert [s.label for s in default_model.predict(texts, max_batch_size=2)] == one_by_one


@pytest.mark.slow
def test_chunked_pipelined_scoring_matches_scoring_one_at_a_time(default_model: SentimentModel) -> None:
    """Several tokenised chunks in flight, several batches per chunk: every text keeps its own scores."""
    texts = [f"flight {i} was {'awful and late' if i % 3 == 0 else 'fine'} " + "really " * (i % 5) for i in range(11)]
    alone = np.array([default_model.predict_probabilities([t])[0] for t in texts])
    chunked = default_model.predict_probabilities(texts, max_batch_size=2, chunk=3)
    np.testing.assert_allclose(chunked, alone, atol=1e-5)
    scores = default_model.predict(texts, max_batch_size=2, chunk=3)
    np.testing.assert_allclose([[s.negative, s.neutral, s.positive] for s in scores], alone, atol=1e-5)


def test_padding_to_a_hardware_multiple_changes_no_score(default_model: SentimentModel) -> None:
    texts = ["short", "a somewhat longer complaint about a delayed flight", "ok then"]
    plain = default_model.predict_probabilities(texts)
    default_model._pad_to = 8
    try:
        padded = default_model.predict_probabilities(texts)
    finally:
        default_model._pad_to = 1
    np.testing.assert_allclose(padded, plain, atol=1e-5)


@pytest.mark.slow
def test_the_onnxruntime_engine_scores_as_torch_does_whatever_the_padding(
    default_model: SentimentModel, exported_model: SentimentModel
) -> None:
    """The graph is traced once on one padded batch; every width, batch size and padding must still match."""
    texts = varied_texts(40)
    expected = default_model.predict_probabilities(texts, max_batch_size=7)
    np.testing.assert_allclose(exported_model.predict_probabilities(texts, max_batch_size=7), expected, atol=1e-4)
    np.testing.assert_allclose(exported_model.predict_probabilities(texts[:1]), expected[:1], atol=1e-4)
    np.testing.assert_allclose(exported_model.predict_probabilities(texts, max_batch_size=64), expected, atol=1e-4)


def test_any_hugging_face_checkpoint_loads_with_its_labels_mapped(tmp_path: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from crisiswatch.sentiment.model import SentimentModel, choose_runtime
    from crisiswatch.sentiment.network import base_model_dir

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=5,
        id2label={i: f"{i + 1} stars" for i in range(5)},
        label2id={f"{i + 1} stars": i for i in range(5)},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(base_model_dir()).save_pretrained(tmp_path)
    model = SentimentModel.load(str(tmp_path), choose_runtime("cpu", "fp32", engine="torch"))
    assert model.labels == [
        Sentiment.NEGATIVE,
        Sentiment.NEGATIVE,
        Sentiment.NEUTRAL,
        Sentiment.POSITIVE,
        Sentiment.POSITIVE,
    ]
    [scores] = model.predict(["some text"])
    assert scores.negative + scores.neutral + scores.positive == pytest.approx(1.0, abs=1e-4)
    exported = SentimentModel.load(str(tmp_path), choose_runtime("cpu", "fp32", engine="onnxruntime"))
    texts = varied_texts(9)
    np.testing.assert_allclose(exported.predict_probabilities(texts), model.predict_probabilities(texts), atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not SEMEVAL.is_file(), reason="../shared/data is not present")
def test_accuracy_floor_on_a_fixed_dev_sample(default_model: SentimentModel) -> None:
    from crisiswatch.modeling.training import stratified_split

    _, dev = stratified_split(read_labelled(SEMEVAL), dev_fraction=0.1, seed=2026)
    sample = dev[::10]
    predicted = [s.label for s in default_model.predict([r.text for r in sample])]
    report = classification_report([r.label for r in sample], predicted)
    assert report.macro_recall >= 0.68, report.as_dict()


@pytest.mark.skipif(not SEMEVAL.is_file(), reason="../shared/data is not present")
@pytest.mark.slow
def test_int8_weights_cost_at_most_half_a_point_of_macro_recall(default_model: SentimentModel) -> None:
    from crisiswatch.modeling.training import stratified_split
    from crisiswatch.sentiment.model import SentimentModel, choose_runtime

    _, dev = stratified_split(read_labelled(SEMEVAL), dev_fraction=0.1, seed=2026)
    sample = dev[::2]
    truth = [r.label for r in sample]
    int8 = SentimentModel.load("default", choose_runtime("cpu", "int8"))
    recalls = {
        name: classification_report(truth, [s.label for s in model.predict([r.text for r in sample])]).macro_recall
        for name, model in (("fp32", default_model), ("int8", int8))
    }
    assert recalls["int8"] >= recalls["fp32"] - 0.005, recalls
