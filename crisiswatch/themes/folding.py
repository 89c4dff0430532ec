"""Near-duplicate posts: copies, retweets and texts that differ only in handles, links or punctuation.

A storm is full of them: a retweet of a complaint, the same copied text from
a hundred accounts, the same post with a different tracking link. They
count as mentions (the detector's counts are unchanged), but an alert that
shows the same text in three of its sample slots wastes the team's first
look, so samples and themes fold them into one post "×N similar".

:func:`fold_key` is deliberately strict: only differences that carry no
meaning are ignored, so two complaints in their authors' own words never
fold.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from crisiswatch.contracts.schemas import SampleMention

RETWEET = re.compile(r"^\s*(?:rt|via)\s+@\w+:?\s*", re.IGNORECASE)
HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
LINK = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
KEY_CHARS = 200
"""How much of a key two posts must share: stored posts are cut (500, 280 characters) after prefixes of any length."""
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def fold_key(text: str) -> str:
    """What is left of a post once retweet prefixes, handles, links, case, accents, punctuation and spacing go.

    Two posts with the same key are copies of one another; only the key's
    first :data:`KEY_CHARS` count, so a long post and a copy cut at another
    place (a retweet prefix shifts the cut) still match. A post with no
    words left (only a link or a handle) keys on its whole text instead, so
    unrelated link-only posts do not fold together.
    """
    folded = LINK.sub(" ", HANDLE.sub(" ", RETWEET.sub("", text))).casefold()
    if not folded.isascii():
        folded = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    key = _NOT_WORD.sub(" ", folded).strip()
    return key[:KEY_CHARS] if key else text.strip()


def fold_samples(samples: Iterable[SampleMention]) -> list[SampleMention]:
    """Sample posts with near-duplicates folded into the earliest of each group, in order of first appearance.

    The kept post counts every copy (``copies``) and their authors'
    followers (``copies_followers``), so a copied complaint shows once with
    its whole reach.
    """
    kept: dict[str, SampleMention] = {}
    for sample in samples:
        key = fold_key(sample.text)
        twin = kept.get(key)
        if twin is None:
            kept[key] = sample
            continue
        first = twin if twin.created_at <= sample.created_at else sample
        followers = twin.author_followers + twin.copies_followers + sample.author_followers + sample.copies_followers
        kept[key] = first.model_copy(
            update={"copies": twin.copies + sample.copies, "copies_followers": followers - first.author_followers}
        )
    return list(kept.values())
