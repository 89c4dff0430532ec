"""Themes by meaning: group an incident's posts into a few themes and name them (scikit-learn and numpy only).

The alerter has no torch, and the posts are English or Hebrew, so the
embedding is lexical but morphology-aware: TF-IDF over words (uni- and
bigrams) and over character n-grams within words (3 to 5 characters, which
match Hebrew words through their attached prefixes ו/ה/ב/ל/מ/ש/כ, and English
words through typos and inflections), handles and links removed, small
English and Hebrew stop-word lists. Latent semantic analysis (truncated SVD)
then brings together words that occur in the same company, and the rows are
L2-normalised, so Euclidean distance orders pairs as cosine distance does.
Right-to-left text needs nothing special: the maths sees characters. The
configured anchors' keywords are synonyms the team wrote down ("bag",
"suitcase", "luggage"; "refund", "החזר"), which a few dozen posts cannot
teach LSA, so which anchors' keywords a post contains is a feature too.

The steps of :func:`find_themes`:

1. Near-duplicates fold first (:func:`crisiswatch.themes.folding.fold_key`):
   only distinct texts are embedded and clustered, each weighted by its
   number of copies, so a retweet storm of one text is one point of weight
   500, not 500 points that would make a dense theme of their own.
2. HDBSCAN finds fine grains of similar texts (no preset count; a minimum
   grain size), leaving texts in no grain as noise.
3. Grains merge into themes: the lightest merges into the one it is most
   similar to (average pairwise cosine, which keeps mixed blobs from
   swallowing everything) until every theme holds ``min_size`` posts and
   there are at most ``max_themes``.
4. Noise posts join the theme whose centroid is nearest when the cosine
   similarity reaches ``attach_similarity``; the rest stay in no theme (-1).
   When nothing forms at all (a handful of posts), the posts are one theme,
   so an alert always says something.
5. Names: each theme's most distinctive words by class-based TF-IDF (a
   word's frequency in the theme against its frequency in all themes), and
   the configured anchor (a ``templates.toml`` theme, which picks the reply
   templates) whose keywords occur in the largest share of the theme's posts,
   when that share reaches :data:`ANCHOR_MIN_SHARE`. A theme near no anchor
   keeps a name of its own terms: a new kind of complaint is named, not
   "other".

The knobs, and how they were chosen: the stated ones are fixed by reasoning;
the four in :class:`Knobs` were chosen on a small grid (54 settings) scored on
the "dev" half of the evaluation set's phrase pools only, by the rule in
:data:`crisiswatch.analysis.theme_evaluation.GRID_RULE` (best NMI averaged over large
dev sets and small two-reason dev incidents, among the settings that put at
least 85% of the posts in a theme); the figures reported come from the
"test" half, whose wordings no choice has seen (``crisiswatch eval-themes
--grid`` reruns both and says whether the grid still picks these):

* ``min_size`` = ``max(5, ceil(3% of the posts))``: a smaller group is an
  anecdote, not what an alert is about (stated: :data:`MIN_POSTS`,
  :data:`MIN_SHARE`).
* :data:`ANCHOR_MIN_SHARE` = 0.3: an anchor names a theme when its keywords
  occur in almost a third of its posts (stated).
* LSA keeps at most a quarter of the distinct texts' count in dimensions, so
  a few dozen posts are reduced too (stated).
* :attr:`Knobs.dimensions` = 100, from {50, 100}.
* :attr:`Knobs.grain_share` = 0.25%, from {0.25%, 0.5%, 1%}: HDBSCAN's minimum
  grain size as a share of the distinct texts (at least three).
* :attr:`Knobs.attach_similarity` = 0.2, from {0.1, 0.2, 0.3}.
* :attr:`Knobs.anchor_weight` = 1, from {0, 0.5, 1}: the anchors' keyword
  hits as features beside the text (see :func:`embed`).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from .folding import HANDLE, LINK, RETWEET, fold_key

MIN_SHARE = 0.03
"""A theme holds at least this share of the posts (and at least :data:`MIN_POSTS`)."""
MIN_POSTS = 5
"""A theme holds at least this many posts: fewer are anecdotes, not what an alert is about."""
ANCHOR_MIN_SHARE = 0.3
"""An anchor names a theme when its keywords occur in at least this share of the theme's posts."""
TERMS = 3
"""Distinctive terms kept per theme."""


@dataclass(frozen=True)
class Knobs:
    """The settings chosen on the dev half of the evaluation set (see the module docstring)."""

    dimensions: int = 100
    """LSA dimensions (at most; at most a quarter of the distinct texts too)."""
    grain_share: float = 0.0025
    """HDBSCAN's minimum cluster size, as a share of the distinct texts (at least three)."""
    attach_similarity: float = 0.2
    """A post in no grain joins the nearest theme when its cosine similarity to the centroid reaches this."""
    anchor_weight: float = 1.0
    """Weight of the anchors' keyword hits in the features, against the text's 1 (0: anchors only name)."""


DEFAULT_KNOBS = Knobs()


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


ENGLISH_STOP_WORDS = _words(
    """a about above after again against all also am an and any are aren't as at be because been before being
    below between both but by can could did didn't do does doesn't doing don't during each even ever few for from
    further get got had has have having he her here hers him his how i i'm i've if im in into is isn't it it's its
    itself just let let's me more most much my myself no nor not now of off on once only or other our ours out over
    own really rt same she should so some still such than that that's the their theirs them then there these they
    this those through to too under until up very via was wasn't we we're were what when where which while who whom
    why will with won't would you you're your yours yourself yourselves amp lol omg pls please u ur ok okay hey us
    though dear wow ugh thanks thank seriously"""
)
"""English function words and chat filler, left out of the word features and the names."""
HEBREW_STOP_WORDS = _words(
    """של את על זה זו זאת עם אני אתה אתם אתן הוא היא הם הן אנחנו גם כל מה יש אין עוד כבר רק אבל או אם כי היה
    הייתה היו יהיה שלי שלך שלכם שלנו שלו שלה לי לך לכם לנו לו לה אותי אותך אתכם אותכם אותנו הזה הזאת האלה אלה
    אחרי לפני מאוד כמו עד כמה פה שם איך למה אז עכשיו היום ממש סתם בכלל שוב וזה ככה כן לא בין תוך נו באמת איתכם
    איתם אחד אחת שום כלום פשוט אפילו ואין ויש הכל הכול כדי אצל אצלכם"""
)
"""Hebrew function words and filler (their prefixed forms are left to the character n-grams)."""
STOP_WORDS = ENGLISH_STOP_WORDS | HEBREW_STOP_WORDS

_WORD_TOKEN = r"(?u)\b[^\W\d_][\w'’]+\b"
_HEBREW = re.compile(r"[\u0590-\u05ff]")
_HEBREW_PREFIXES = "[והבלמשכ]{0,2}"


@dataclass(frozen=True)
class Anchor:
    """A configured theme (``templates.toml``): its name, which picks the reply templates, and its keywords."""

    name: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Theme:
    """One theme: its label for people, the anchor it is nearest (if any), distinctive terms, posts and share.

    ``size`` counts posts with their copies; ``share`` is ``size`` over all
    the posts given to :func:`find_themes`.
    """

    theme_id: int
    label: str
    anchor: str | None
    terms: tuple[str, ...]
    size: int
    share: float


@dataclass(frozen=True)
class Themes:
    """The themes (largest first, ``theme_id`` = position) and, per input post, its theme and the post it copies.

    ``assignment[i]`` is the ``theme_id`` of post ``i`` (-1: in no theme);
    ``duplicate_of[i]`` is the index of the first post with the same
    :func:`fold_key`, or ``None`` for that first post itself. A copy always
    has its original's theme.
    """

    themes: list[Theme]
    assignment: list[int]
    duplicate_of: list[int | None]


def anchors_from_templates(path: Path) -> list[Anchor]:
    """The ``[themes.<name>]`` tables of a templates TOML file as anchors, in file order (no keywords: skipped)."""
    return anchors_from_themes(tomllib.loads(path.read_text(encoding="utf-8")).get("themes", {}))


def anchors_from_themes(themes: Mapping[str, Mapping[str, object]]) -> list[Anchor]:
    """Anchors from the templates' ``themes`` tables (name → ``{"keywords": [...]}``); no keywords: skipped.

    The one way anchors are built, for the live alert and for reports alike.
    """
    anchors = []
    for name, spec in themes.items():
        listed = spec.get("keywords") or []
        keywords = tuple(str(k) for k in listed if str(k).strip()) if isinstance(listed, list | tuple) else ()
        if keywords:
            anchors.append(Anchor(name=name, keywords=keywords))
    return anchors


def clean(text: str) -> str:
    """A post as the features see it: no retweet prefix, handles or links, hashtags as words, case folded."""
    stripped = LINK.sub(" ", HANDLE.sub(" ", RETWEET.sub("", text)))
    return stripped.replace("#", " ").casefold()


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """A keyword as a whole word or phrase in case-folded text; Hebrew ones also behind attached prefixes."""
    prefix = _HEBREW_PREFIXES if _HEBREW.match(keyword) else ""
    return re.compile(rf"(?<!\w){prefix}{re.escape(keyword.casefold())}(?!\w)")


def anchor_hits(cleaned: Sequence[str], anchors: Sequence[Anchor]) -> np.ndarray:
    """A posts × anchors matrix of booleans: whether any of the anchor's keywords occurs in the cleaned post."""
    hits = np.zeros((len(cleaned), len(anchors)), dtype=bool)
    for column, anchor in enumerate(anchors):
        patterns = [keyword_pattern(k) for k in anchor.keywords]
        for row, text in enumerate(cleaned):
            hits[row, column] = any(p.search(text) for p in patterns)
    return hits


def embed(
    cleaned: Sequence[str],
    *,
    seed: int = 0,
    dimensions: int = DEFAULT_KNOBS.dimensions,
    hits: np.ndarray | None = None,
    anchor_weight: float = 0.0,
) -> np.ndarray:
    """LSA vectors (rows L2-normalised) of cleaned texts: word and in-word character TF-IDF, truncated SVD.

    The two TF-IDF blocks weigh the same. ``hits`` (posts × anchors, from
    :func:`anchor_hits`) adds the anchors as a third block weighing
    ``anchor_weight`` against the text: an anchor's keywords are synonyms the
    team configured ("bag", "suitcase", "luggage"), which a few dozen posts
    cannot teach LSA. The SVD keeps at most a quarter of the texts'
    count in dimensions, so small sets are reduced too; with too few texts
    or features for an SVD the TF-IDF rows themselves are returned (dense).
    """
    common = {"sublinear_tf": True, "dtype": np.float32}
    blocks = []
    word = TfidfVectorizer(token_pattern=_WORD_TOKEN, ngram_range=(1, 2), stop_words=sorted(STOP_WORDS), **common)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), max_features=30_000, **common)
    for vectorizer in (word, char):
        try:
            blocks.append(vectorizer.fit_transform(cleaned))
        except ValueError:  # no term at all (only stop words, emoji or digits)
            continue
    if not blocks:
        return np.zeros((len(cleaned), 1), dtype=np.float32)
    matrix = normalize(sparse.hstack(blocks).tocsr())
    if hits is not None and hits.size and anchor_weight > 0:
        anchors = normalize(sparse.csr_matrix(hits.astype(np.float32))) * anchor_weight
        matrix = sparse.hstack([matrix, anchors]).tocsr()
    components = min(dimensions, matrix.shape[0] // 4, matrix.shape[1] - 1)
    if components < 2:
        return np.asarray(matrix.todense())
    reduced = TruncatedSVD(n_components=components, random_state=seed).fit_transform(matrix)
    return normalize(reduced)


def _means(vectors: np.ndarray, labels: np.ndarray, weights: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Weighted mean vector per cluster, not normalised: ``a · b`` of two is their average pairwise cosine."""
    rows = [np.average(vectors[labels == i], axis=0, weights=weights[labels == i]) for i in ids]
    return np.vstack(rows) if rows else np.zeros((0, vectors.shape[1]))


def _cluster(vectors: np.ndarray, weights: np.ndarray, min_size: int, max_themes: int, knobs: Knobs) -> np.ndarray:
    """A label per distinct text (-1: none): fine HDBSCAN grains, merged up to themes, loose posts attached."""
    count = len(vectors)
    grain = max(3, math.ceil(knobs.grain_share * count))
    labels = np.full(count, -1)
    if count >= grain + 1:
        labels = HDBSCAN(min_cluster_size=grain, min_samples=1, copy=True).fit_predict(vectors)
    if (labels < 0).all():
        return np.zeros(count, dtype=int)  # no structure found: the posts are one theme
    kept = sorted({int(i) for i in labels if i >= 0})
    while len(kept) > 1:
        masses = np.array([weights[labels == i].sum() for i in kept])
        lightest = int(np.argmin(masses))
        if len(kept) <= max_themes and masses[lightest] >= min_size:
            break
        means = _means(vectors, labels, weights, kept)
        similarity = means @ means[lightest]
        similarity[lightest] = -np.inf
        labels[labels == kept[lightest]] = kept[int(np.argmax(similarity))]
        kept.pop(lightest)
    centroids = normalize(_means(vectors, labels, weights, kept))
    loose = np.flatnonzero(labels < 0)
    if len(loose):
        similarity = vectors[loose] @ centroids.T
        nearest = similarity.argmax(axis=1)
        close = similarity[np.arange(len(loose)), nearest] >= knobs.attach_similarity
        labels[loose[close]] = np.asarray(kept)[nearest[close]]
    return labels


def distinctive_terms(
    cleaned: Sequence[str], weights: np.ndarray, labels: np.ndarray, ids: Sequence[int]
) -> list[tuple[str, ...]]:
    """Per cluster id, its most distinctive words by class-based TF-IDF (c-TF-IDF), best first.

    A term's weight in a class is its frequency there times
    ``log(1 + average words per class / its frequency over all classes)``. A
    word already inside a better bigram is skipped, so a name does not say
    "luggage, lost luggage".
    """
    vectorizer = CountVectorizer(token_pattern=_WORD_TOKEN, ngram_range=(1, 2), stop_words=sorted(STOP_WORDS))
    try:
        counts = vectorizer.fit_transform(cleaned)
    except ValueError:
        return [() for _ in ids]
    vocabulary = vectorizer.get_feature_names_out()
    weighted = sparse.diags(weights.astype(float)) @ counts
    per_class = np.vstack([np.asarray(weighted[labels == i].sum(axis=0)).ravel() for i in ids])
    totals = per_class.sum(axis=1, keepdims=True)
    frequency = per_class / np.maximum(totals, 1e-9)
    average = totals.mean()
    idf = np.log1p(average / np.maximum(per_class.sum(axis=0), 1e-9))
    scores = frequency * idf
    names: list[tuple[str, ...]] = []
    for row in scores:
        chosen: list[str] = []
        for index in np.lexsort((vocabulary, -row)):
            if row[index] <= 0 or len(chosen) == TERMS:
                break
            term = str(vocabulary[index])
            words = set(term.split())
            if any(words <= set(other.split()) or set(other.split()) <= words for other in chosen):
                continue
            chosen.append(term)
        names.append(tuple(chosen))
    return names


def _label(anchor: str | None, terms: tuple[str, ...], theme_id: int) -> str:
    if anchor is None:
        return ", ".join(terms) if terms else f"theme {theme_id + 1}"
    shown = anchor.replace("_", " ")
    return f"{shown} ({', '.join(terms)})" if terms else shown


def default_min_size(posts: int) -> int:
    """The smallest theme for ``posts`` posts: 3% of them, at least :data:`MIN_POSTS`."""
    return max(MIN_POSTS, math.ceil(MIN_SHARE * posts))


def find_themes(
    texts: Sequence[str],
    anchors: Sequence[Anchor] = (),
    *,
    min_size: int | None = None,
    max_themes: int = 12,
    seed: int = 0,
    knobs: Knobs = DEFAULT_KNOBS,
) -> Themes:
    """Group posts into at most ``max_themes`` themes by meaning, name them, and mark the copies.

    ``min_size`` (posts, copies included) defaults to
    :func:`default_min_size`. Fewer posts than that make one theme, so an
    alert always says something. The same texts, anchors and seed give the
    same themes.
    """
    duplicate_of: list[int | None] = []
    first: dict[str, int] = {}
    distinct: list[int] = []
    for index, text in enumerate(texts):
        key = fold_key(text)
        if key in first:
            duplicate_of.append(first[key])
        else:
            first[key] = index
            distinct.append(index)
            duplicate_of.append(None)
    if not distinct:
        return Themes(themes=[], assignment=[], duplicate_of=[])
    row_of = {index: row for row, index in enumerate(distinct)}
    post_rows = np.array(
        [row_of[index if original is None else original] for index, original in enumerate(duplicate_of)]
    )
    weights = np.bincount(post_rows, minlength=len(distinct)).astype(float)
    cleaned = [clean(texts[index]) for index in distinct]
    threshold = default_min_size(len(texts)) if min_size is None else max(1, min_size)

    hits = anchor_hits(cleaned, anchors)
    vectors = embed(cleaned, seed=seed, dimensions=knobs.dimensions, hits=hits, anchor_weight=knobs.anchor_weight)
    labels = _cluster(vectors, weights, threshold, max(1, max_themes), knobs)

    ids = sorted({int(i) for i in labels if i >= 0}, key=lambda i: (-weights[labels == i].sum(), i))
    terms = distinctive_terms(cleaned, weights, labels, ids)
    themes: list[Theme] = []
    renumber = {-1: -1}
    for theme_id, (cluster, cluster_terms) in enumerate(zip(ids, terms, strict=True)):
        members = labels == cluster
        size = int(weights[members].sum())
        anchor = None
        if anchors:
            shares = (weights[members] @ hits[members]) / size
            best = int(np.argmax(shares))
            if shares[best] >= ANCHOR_MIN_SHARE:
                anchor = anchors[best].name
        renumber[cluster] = theme_id
        themes.append(
            Theme(
                theme_id=theme_id,
                label=_label(anchor, cluster_terms, theme_id),
                anchor=anchor,
                terms=cluster_terms,
                size=size,
                share=size / len(texts),
            )
        )
    assignment = [renumber[int(labels[row])] for row in post_rows]
    return Themes(themes=themes, assignment=assignment, duplicate_of=duplicate_of)
