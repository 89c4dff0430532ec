"""Themes by meaning: group an incident's posts into a few themes and name them in the posts' own words.

What a post is about is read by a sentence encoder (:mod:`.encoding`: texts
to unit vectors, multilingual-e5-small by default), which knows that "bags",
"luggage" and "suitcase" are one complaint, beside lexical evidence: TF-IDF
over words (uni- and bigrams) and over character n-grams within words (3 to
5 characters, which match Hebrew words through their attached prefixes and
English words through typos), reduced by latent semantic analysis. The
lexical block keeps words the encoder does not know (product names, slang)
from being lost. The configured anchors' keywords
are not features: on long complaints nearly every post hits several of
them, which pulled unrelated posts together (NMI on the CFPB narratives fell
from 0.35 to 0.14 with them). Without an encoder (none installed, or its load
failed) the lexical block alone is used.

The steps of :func:`find_themes`:

1. Near-duplicates fold first (:func:`crisiswatch.themes.folding.fold_key`):
   only distinct texts are embedded and clustered, each weighted by its
   number of copies, so a retweet storm of one text is one point of weight
   500, not 500 points that would make a dense theme of their own.
2. k-means (each distinct text once: copies count in the themes' sizes,
   not in where their centres lie) for every count of themes from
   :attr:`Knobs.fewest_themes` (fewer for a few dozen posts) to
   ``max_themes`` (fewer when the posts cannot fill that many themes of
   ``min_size``); the count whose grouping has the best mean silhouette
   (cosine) is kept. Real complaints rarely
   form dense islands, so a density method leaves most of them as noise or
   one blob; k-means gives every post a theme, and the silhouette says how
   many themes the posts hold.
3. A theme lighter than ``min_size`` merges into the one it is most similar
   to (average pairwise cosine).
4. Names: each theme's most distinctive phrases in the posts' own words
   (:func:`theme_names`): words and two-word phrases by how much more often
   they occur in the theme's posts than in all the posts, a phrase ("lost
   luggage") preferred to its word ("luggage") when most of the word's posts
   say it. The configured anchor (a ``templates.toml`` theme, which picks the
   reply templates) whose keywords occur in the largest share of the theme's
   posts is kept beside the name when that share reaches
   :data:`ANCHOR_MIN_SHARE`.

The knobs, and how they were chosen: the stated ones are fixed by reasoning;
two in :class:`Knobs` (``lexical_weight`` and ``centre``) are scored on the
real labelled sets of :mod:`crisiswatch.analysis.real_themes` (``crisiswatch
eval-themes --held-out``), each set a fold, by the mean and the worst set's
NMI at whole-set and at alert size
(:data:`crisiswatch.analysis.theme_evaluation.GRID_RULE`), never on the
generated set. Leaving each set out in turn, four of the five folds choose
``lexical_weight`` 0.3 and centring on the other four (the fifth, tweets
labelled by industry, 0.3 uncentred), and so do all five sets together: those
are the defaults (``docs/alerts.md``, Themes on real complaints).
``fewest_themes`` is 6, the floor of the 6-12 themes the alerts aim at.
The stated ones:

* ``min_size`` = ``max(5, ceil(3% of the posts))``: a smaller group is an
  anecdote, not what an alert is about (stated: :data:`MIN_POSTS`,
  :data:`MIN_SHARE`).
* :data:`ANCHOR_MIN_SHARE` = 0.3: an anchor is kept beside a theme when its
  keywords occur in almost a third of its posts (stated).
* LSA keeps at most 100 dimensions and a quarter of the distinct texts'
  count (stated).
* :attr:`Knobs.lexical_weight`, :attr:`Knobs.centre` and :attr:`Knobs.fewest_themes`: see there.
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
from threadpoolctl import threadpool_limits

from .encoding import Encoder
from .folding import HANDLE, LINK, RETWEET, fold_key

MIN_SHARE = 0.03
"""A theme holds at least this share of the posts (and at least :data:`MIN_POSTS`)."""
MIN_POSTS = 5
"""A theme holds at least this many posts: fewer are anecdotes, not what an alert is about."""
ANCHOR_MIN_SHARE = 0.3
"""An anchor is kept beside a theme when its keywords occur in at least this share of the theme's posts."""
TERMS = 3
"""Distinctive phrases kept per theme (the label shows the first two)."""
LSA_DIMENSIONS = 100
"""Most LSA dimensions of the lexical block."""
POSTS_PER_FLOOR_THEME = 25
"""The floor of :attr:`Knobs.fewest_themes` holds only where it leaves this many distinct posts per theme, so
a small alert about two clear things gets two themes."""
SILHOUETTE_SAMPLE = 1000
"""Most texts the silhouette is measured on (all of an alert's)."""
ONE_THREAD_TEXTS = 1000
"""Up to this many distinct texts (every alert) the words, the SVD and k-means run on one thread: on a few hundred
texts the threads of OpenMP and BLAS wait on each other far longer than they compute, most of all on a busy
machine (a 150-post grouping took five times as long with two threads on a shared 2-core machine)."""
PHRASE_SHARE = 0.5
"""A two-word phrase names a theme instead of its word when at least this share of the word's posts say it."""
TERM_MIN_SHARE = 0.05
"""A name's phrase occurs in at least this share of the theme's posts (and in two posts at least)."""


@dataclass(frozen=True)
class Knobs:
    """The settings chosen on the real labelled sets (see the module docstring and ``eval-themes --held-out``)."""

    lexical_weight: float = 0.3
    """Share of the lexical block (LSA of words and character n-grams) in the features; the encoder has the rest."""
    fewest_themes: int = 6
    """The silhouette chooses the count of themes from this to ``max_themes`` (the silhouette alone prefers too
    few in large sets, where meaning varies smoothly); a small set may have fewer (:data:`POSTS_PER_FLOOR_THEME`)."""
    centre: bool = True
    """Take the mean of the grouped texts' encoder vectors off each before mixing: e5's vectors all lie within a
    narrow cone (cosines of 0.7-0.9 between unrelated texts), so uncentred, their differences are drowned by the
    word block's."""


DEFAULT_KNOBS = Knobs()
KNOBS_BY_ENCODER: dict[str, Knobs] = {"e5": DEFAULT_KNOBS, "minilm": Knobs(lexical_weight=0.0, centre=False)}
"""Each shipped encoder's knobs (by its name in :data:`.encoding.ENCODERS`), chosen on the five real sets by
``crisiswatch eval-themes --encoder NAME --held-out`` (``docs/alerts.md``): MiniLM's vectors need no word block."""


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
_REDACTION = re.compile(r"(?<![^\W\d_])x{2,}(?![^\W\d_])")


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
    """A post as the features see it: no retweet prefix, handles, links or redactions, hashtags as words, case folded.

    Redactions are runs of x ("XXXX", "xx/xx/xxxx") that complaint archives
    put for names, dates and numbers: in every post, they would name every theme.
    """
    stripped = LINK.sub(" ", HANDLE.sub(" ", RETWEET.sub("", text)))
    return _REDACTION.sub(" ", stripped.replace("#", " ").casefold())


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
    dimensions: int = LSA_DIMENSIONS,
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
    from sklearn.decomposition import TruncatedSVD  # scikit-learn loads on first use, not with the alerter's imports
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

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


def features(
    cleaned: Sequence[str],
    encoded: np.ndarray | None,
    *,
    lexical_weight: float = DEFAULT_KNOBS.lexical_weight,
    centre: bool = DEFAULT_KNOBS.centre,
    seed: int = 0,
) -> np.ndarray:
    """Unit rows of the encoder's vectors and the lexical block side by side, mixed by ``lexical_weight``.

    The two blocks weigh ``1 - lexical_weight`` and ``lexical_weight`` in
    squared length, so their cosines mix in that proportion.

    ``encoded`` None (no encoder) or ``lexical_weight`` 1: the lexical block
    alone; ``lexical_weight`` 0: the encoder alone. ``centre``: the encoder's
    vectors less their mean (see :attr:`Knobs.centre`).
    """
    from sklearn.preprocessing import normalize

    if encoded is None or lexical_weight >= 1:
        return embed(cleaned, seed=seed)
    if centre and len(encoded) > 1:
        encoded = encoded - encoded.mean(axis=0)
    if lexical_weight <= 0:
        return normalize(encoded)
    lexical = embed(cleaned, seed=seed)
    blocks = (normalize(encoded) * math.sqrt(1 - lexical_weight), lexical * math.sqrt(lexical_weight))
    return normalize(np.hstack(blocks).astype(np.float32))


def _means(vectors: np.ndarray, labels: np.ndarray, weights: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Weighted mean vector per cluster, not normalised: ``a · b`` of two is their average pairwise cosine."""
    rows = [np.average(vectors[labels == i], axis=0, weights=weights[labels == i]) for i in ids]
    return np.vstack(rows) if rows else np.zeros((0, vectors.shape[1]))


def _kmeans(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    # Each distinct text once: a text copied 200 times is one thing said, not a centre of its own.
    return KMeans(n_clusters=count, n_init=3, random_state=seed).fit_predict(vectors)


def _cluster(
    vectors: np.ndarray, weights: np.ndarray, min_size: int, max_themes: int, knobs: Knobs, seed: int
) -> np.ndarray:
    """A theme label per distinct text: k-means at the count of best silhouette, light themes merged away.

    The silhouette is measured on at most :data:`SILHOUETTE_SAMPLE` texts, so
    a whole export costs seconds, not minutes.
    """
    from sklearn.metrics import silhouette_score

    count = len(vectors)
    most = min(max_themes, int(weights.sum() // max(min_size, 1)), count - 1)
    distinct_rows = len(np.unique(vectors.round(6), axis=0))
    most = min(most, distinct_rows - 1)
    if most < 2:
        return np.zeros(count, dtype=int)  # too few posts to split: they are one theme
    fewest = max(2, min(knobs.fewest_themes, most, count // POSTS_PER_FLOOR_THEME))
    best: tuple[float, np.ndarray] | None = None
    for themes in range(fewest, most + 1):
        labels = _kmeans(vectors, themes, seed)
        if len(set(labels.tolist())) < 2:
            continue
        score = float(
            silhouette_score(
                vectors, labels, metric="cosine", sample_size=min(count, SILHOUETTE_SAMPLE), random_state=seed
            )
        )
        if best is None or score > best[0]:
            best = (score, labels)
    if best is None:
        return np.zeros(count, dtype=int)
    labels = best[1].copy()
    kept = sorted({int(i) for i in labels})
    while len(kept) > 1:
        masses = np.array([weights[labels == i].sum() for i in kept])
        lightest = int(np.argmin(masses))
        if masses[lightest] >= min_size:
            break
        means = _means(vectors, labels, weights, kept)
        similarity = means @ means[lightest]
        similarity[lightest] = -np.inf
        labels[labels == kept[lightest]] = kept[int(np.argmax(similarity))]
        kept.pop(lightest)
    return labels


def theme_names(
    cleaned: Sequence[str], weights: np.ndarray, labels: np.ndarray, ids: Sequence[int]
) -> list[tuple[str, ...]]:
    """Per cluster id, its most distinctive phrases in the posts' own words, best first (at most :data:`TERMS`).

    A phrase (a word, or two words once function words are out) scores
    ``share · log(share / overall)``: ``share`` the weighted share of the
    theme's posts that contain it, ``overall`` the same over all posts. Common
    words ("flight" in every airline complaint) score little; a word most of
    whose posts in the theme say one two-word phrase is named by the phrase
    ("lost luggage", "hold times"); phrases sharing a word are not both kept.
    A phrase must occur in two of the theme's texts and :data:`TERM_MIN_SHARE`
    of its posts, unless no phrase does. A theme that holds every post is
    named by its commonest phrases instead, as none is distinctive.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        token_pattern=_WORD_TOKEN, ngram_range=(1, 2), stop_words=sorted(STOP_WORDS), binary=True
    )
    try:
        presence = vectorizer.fit_transform(cleaned).tocsc()
    except ValueError:  # no words at all
        return [() for _ in ids]
    vocabulary = vectorizer.get_feature_names_out()
    words_of = [term.split() for term in vocabulary]
    weighted = sparse.diags(weights.astype(float)) @ presence
    overall = np.asarray(weighted.sum(axis=0)).ravel() / weights.sum()
    phrases_with: dict[str, list[int]] = {}
    for index, words in enumerate(words_of):
        if len(words) == 2:
            for word in set(words):
                phrases_with.setdefault(word, []).append(index)
    names: list[tuple[str, ...]] = []
    for cluster in ids:
        members = labels == cluster
        share = np.asarray(weighted[members].sum(axis=0)).ravel() / weights[members].sum()
        texts = np.asarray(presence[members].sum(axis=0)).ravel()
        usable = (texts >= 2) & (share >= TERM_MIN_SHARE)
        if not usable.any():  # posts that share no phrase: named by their most distinctive words all the same
            usable = texts >= 1
        if members.all():  # one theme holds every post: nothing is distinctive, so its commonest phrases name it
            score = np.where(usable, share, -np.inf)
        else:
            score = np.where(usable, share * np.log(np.maximum(share, 1e-12) / np.maximum(overall, 1e-12)), -np.inf)
        chosen: list[str] = []
        used: set[str] = set()
        for index in np.lexsort((vocabulary, -score)):
            if not np.isfinite(score[index]) or score[index] <= 0 or len(chosen) == TERMS:
                break
            if len(words_of[index]) == 1:
                phrases = [p for p in phrases_with.get(words_of[index][0], []) if usable[p]]
                best = max(phrases, key=lambda p: (share[p], vocabulary[p]), default=None)
                if best is not None and share[best] >= PHRASE_SHARE * share[index]:
                    index = best
            if used & set(words_of[index]):
                continue
            chosen.append(str(vocabulary[index]))
            used |= set(words_of[index])
        names.append(tuple(chosen))
    return names


def _label(terms: tuple[str, ...], theme_id: int) -> str:
    return ", ".join(terms[:2]) if terms else f"theme {theme_id + 1}"


def default_min_size(posts: int) -> int:
    """The smallest theme for ``posts`` posts: 3% of them, at least :data:`MIN_POSTS`."""
    return max(MIN_POSTS, math.ceil(MIN_SHARE * posts))


def find_themes(
    texts: Sequence[str],
    anchors: Sequence[Anchor] = (),
    *,
    encoder: Encoder | None = None,
    min_size: int | None = None,
    max_themes: int = 12,
    seed: int = 0,
    knobs: Knobs = DEFAULT_KNOBS,
) -> Themes:
    """Group posts into at most ``max_themes`` themes by meaning, name them, and mark the copies.

    ``encoder`` (texts to unit vectors, see :mod:`.encoding`) reads what a
    post is about; without one, the words alone group the posts.
    ``min_size`` (posts, copies included) defaults to
    :func:`default_min_size`. Fewer posts than two themes' worth make one
    theme, so an alert always says something. The same texts, anchors,
    encoder and seed give the same themes.
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
    encoded = encoder(cleaned) if encoder is not None and len(distinct) > 1 else None
    with threadpool_limits(1 if len(distinct) <= ONE_THREAD_TEXTS else None):
        vectors = features(cleaned, encoded, lexical_weight=knobs.lexical_weight, centre=knobs.centre, seed=seed)
        labels = _cluster(vectors, weights, threshold, max(1, max_themes), knobs, seed)
        ids = sorted({int(i) for i in labels if i >= 0}, key=lambda i: (-weights[labels == i].sum(), i))
        terms = theme_names(cleaned, weights, labels, ids)
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
                label=_label(cluster_terms, theme_id),
                anchor=anchor,
                terms=cluster_terms,
                size=size,
                share=size / len(texts),
            )
        )
    assignment = [renumber[int(labels[row])] for row in post_rows]
    return Themes(themes=themes, assignment=assignment, duplicate_of=duplicate_of)
