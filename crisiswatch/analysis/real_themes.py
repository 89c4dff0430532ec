"""Real labelled complaint sets for judging themes, and alert-sized samples drawn from them.

The sets live in ``shared/data/themes`` (see its README; never committed):

* ``banking77``: written banking customer queries (the 3,080 of the test
  split), 77 intents. PolyAI, CC BY 4.0.
* ``cfpb_issue`` and ``cfpb_product``: the 1,532 CFPB consumer complaints
  that carry the consumer's own narrative, labelled by issue and by product.
  US public data.
* ``twitter_complaints``: the 1,232 real tweets to brands marked complaints,
  labelled by the brand's domain (Preotiuc-Pietro et al., ACL 2019).
* ``semeval14_restaurants``: restaurant review sentences with exactly one
  aspect category (food, service, price, ambience, anecdotes). SemEval-2014
  task 4, research use. (The laptop file has aspect terms, no categories.)

An alert does not see a whole set: it sees 40 to 150 posts about a few
reasons, some common and some rare. :func:`alert_samples` draws such
samples: a size, a handful of reasons (weighted by how common they are) and
shares among them from a flat Dirichlet.
"""

from __future__ import annotations

import csv
import random
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

DEFAULT_DIR = Path("../shared/data/themes")
"""Where the sets are, from the repository root."""
ALERT_SIZES = (40, 150)
"""Smallest and largest alert sample (posts); the alert keeps at most 150 sampled posts."""
ALERT_REASONS = (2, 8)
"""Fewest and most reasons behind one alert sample."""


class LabelledPost(NamedTuple):
    """One real post and what people said it is about."""

    text: str
    reason: str


def _banking77(root: Path) -> list[LabelledPost]:
    with (root / "banking77" / "test.csv").open(encoding="utf-8", newline="") as handle:
        return [LabelledPost(r["text"], r["category"]) for r in csv.DictReader(handle)]


def _cfpb(column: str) -> Callable[[Path], list[LabelledPost]]:
    def load(root: Path) -> list[LabelledPost]:
        with (root / "cfpb" / "complaints_sample_6623.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        field = "Consumer complaint narrative"
        return [LabelledPost(r[field], r[column]) for r in rows if r[field].strip()]

    return load


def _twitter(root: Path) -> list[LabelledPost]:
    with (root / "twitter_complaints" / "complaints-data.csv").open(encoding="utf-8", newline="") as handle:
        return [LabelledPost(r[1], r[3]) for r in csv.reader(handle) if len(r) >= 4 and r[2] == "1"]


def _semeval(root: Path) -> list[LabelledPost]:
    tree = ET.parse(root / "semeval14_absa" / "Restaurants_Train_v2.xml")
    posts = []
    for sentence in tree.getroot().iter("sentence"):
        categories = [c.get("category") for c in sentence.iter("aspectCategory")]
        text = sentence.findtext("text")
        if text and len(categories) == 1 and categories[0]:
            posts.append(LabelledPost(text, categories[0]))
    return posts


LOADERS: dict[str, Callable[[Path], list[LabelledPost]]] = {
    "banking77": _banking77,
    "cfpb_issue": _cfpb("Issue"),
    "cfpb_product": _cfpb("Product"),
    "twitter_complaints": _twitter,
    "semeval14_restaurants": _semeval,
}
"""Each real set by name (CFPB twice: the same narratives labelled by issue and by product)."""


def load_sets(root: Path = DEFAULT_DIR, names: Sequence[str] | None = None) -> dict[str, list[LabelledPost]]:
    """The real sets found under ``root`` (a set whose files are missing is left out)."""
    found = {}
    for name in names or LOADERS:
        try:
            found[name] = LOADERS[name](root)
        except FileNotFoundError:
            continue
    return found


def alert_samples(posts: Sequence[LabelledPost], count: int, seed: int) -> list[list[LabelledPost]]:
    """``count`` alert-sized samples of ``posts``: 40-150 posts each, about 2-8 reasons in uneven shares.

    Reasons are drawn in proportion to how common they are in the set, so a
    sample looks like a storm: a few complaints most people share, a tail of
    others. The same posts, count and seed give the same samples.
    """
    rng = random.Random(seed)
    generator = np.random.default_rng(seed)
    by_reason: dict[str, list[LabelledPost]] = {}
    for post in posts:
        by_reason.setdefault(post.reason, []).append(post)
    frequency = Counter({reason: len(members) for reason, members in by_reason.items()})
    samples = []
    for _ in range(count):
        size = rng.randint(*ALERT_SIZES)
        wanted = min(rng.randint(*ALERT_REASONS), len(frequency))
        reasons: list[str] = []
        pool = dict(frequency)
        while len(reasons) < wanted:
            reason = rng.choices(list(pool), weights=list(pool.values()))[0]
            reasons.append(reason)
            del pool[reason]
        shares = generator.dirichlet(np.ones(len(reasons)))
        counts = np.maximum(1, np.round(shares * size).astype(int))
        sample = []
        for reason, wanted_posts in zip(reasons, counts, strict=True):
            members = by_reason[reason]
            sample.extend(rng.sample(members, min(int(wanted_posts), len(members))))
        rng.shuffle(sample)
        samples.append(sample)
    return samples
