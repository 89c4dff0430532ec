"""Near-duplicate posts fold into one sample "×N similar", with their reach summed; the counts stay as they are."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crisiswatch.alerter.alert_blocks import compose_blocks
from crisiswatch.contracts.schemas import THEME_POSTS_MAX, THEME_TEXT_CHARS
from crisiswatch.detection.lifecycle import _merge_samples, _theme_posts
from crisiswatch.detection.windows import MAX_SAMPLES, AddResult, BrandBuckets, add_mention
from crisiswatch.themes.folding import fold_key, fold_samples

from ..factories import T0, incident, sample_mentions, scored_mention


@pytest.mark.parametrize(
    "copy",
    [
        "RT @bob: @AcmeAir lost my bag AGAIN!! https://t.co/x1",
        "@AcmeAir lost my bag again",
        "Lost my bag again, @AcmeAirHelp. https://acme.example/t?utm=9",
        "lost   my bag    again!!!",
        "LOST MY BAG AGAIN",
    ],
)
def test_copies_retweets_and_link_or_handle_variants_share_a_key(copy: str) -> None:
    assert fold_key(copy) == fold_key("@AcmeAir lost my bag again")


def test_posts_in_their_own_words_and_link_only_posts_do_not_fold() -> None:
    assert fold_key("@AcmeAir lost my luggage again") != fold_key("@AcmeAir lost my bag again")
    assert fold_key("https://t.co/a") != fold_key("https://t.co/b")
    assert fold_key("האפליקציה של גליל מובייל לא עובדת!") == fold_key("האפליקציה של  גליל מובייל לא עובדת")


def test_folded_samples_keep_the_earliest_post_and_sum_copies_and_followers() -> None:
    samples = sample_mentions(
        ["lost my bag again @AcmeAir", "RT @x: lost my bag again @AcmeAir", "gate agent was rude"]
    )
    samples[0] = samples[0].model_copy(update={"created_at": T0 + timedelta(minutes=1), "author_followers": 10})
    samples[1] = samples[1].model_copy(update={"author_followers": 5000})
    [bags, rude] = fold_samples(samples)
    assert bags.id == "1", "the earliest of the copies stands for them"
    assert (bags.copies, bags.copies_followers, bags.reach) == (2, 10, 5000 + 10 + 2)
    assert (rude.copies, rude.reach) == (1, 101)
    [again] = fold_samples([bags, bags.model_copy(update={"id": "9", "created_at": T0 + timedelta(hours=1)})])
    assert again.copies == 4 and again.copies_followers == 5000 + 10 + 10


def test_a_bucket_counts_every_copy_but_shows_it_once_among_its_samples() -> None:
    state = BrandBuckets()
    width = timedelta(minutes=1)
    original = "@AcmeAir cancelled my flight and nobody answers the phone"
    texts = [original, *(f"RT @fan{i}: {original} https://t.co/{i}" for i in range(9))]
    texts += [f"complaint {word} about the lounge" for word in ("one", "two", "three", "four", "five")]
    for number, text in enumerate(texts):
        mention = scored_mention(
            f"m{number}", "acme-air", T0 + timedelta(seconds=number), negative=True, text=text, author_followers=100
        )
        assert add_mention(state, mention, width) is AddResult.COUNTED
    [bucket] = state.open
    assert bucket.negative == len(texts), "a copy is still a mention"
    assert len(bucket.samples) == MAX_SAMPLES
    [copied] = [s for s in bucket.samples if s.copies > 1]
    assert copied.text == original and copied.copies == 10 and copied.reach == 10 * 101
    assert bucket.samples[0] is copied, "ten copies reach further than any one post"
    assert len({fold_key(s.text) for s in bucket.samples}) == MAX_SAMPLES


def test_an_incident_folds_copies_across_buckets_and_the_alert_says_how_many() -> None:
    early = sample_mentions(["@AcmeAir lost my bag again"], author_followers=1000)
    late = [s.model_copy(update={"id": "later", "text": "RT @z: @AcmeAir lost my bag again"}) for s in early]
    [merged] = _merge_samples(early, late, early)
    assert merged.copies == 2, "the same post seen twice is not a copy"
    alert = incident().model_copy(update={"sample_mentions": [merged]})
    rendered = str([block.to_dict() for block in compose_blocks(alert)])
    assert "and 1 similar post, reach 2,002" in rendered


def test_an_incident_keeps_every_sampled_story_for_its_themes_most_copied_first_up_to_a_cap() -> None:
    buckets = [
        sample_mentions([f"story {minute} {n}" for n in range(5)], author_followers=minute) for minute in range(40)
    ]
    for minute, bucket in enumerate(buckets):
        buckets[minute] = [s.model_copy(update={"id": f"{minute}-{s.id}"}) for s in bucket]
    copied = [s.model_copy(update={"id": f"copy-{i}", "text": "RT @a: story 0 0"}) for i, s in enumerate(buckets[1])]
    posts = _theme_posts(*buckets, copied)
    assert len(posts) == THEME_POSTS_MAX
    assert posts[0].text == "story 0 0" and posts[0].copies == 6
    assert len({fold_key(p.text) for p in posts}) == THEME_POSTS_MAX
    [long] = _theme_posts(sample_mentions(["x" * 500], url="https://social.example/1"))
    assert (len(long.text), long.url) == (THEME_TEXT_CHARS, None), "150 theme posts ride every incident event"
    later = long.model_copy(update={"id": "later", "text": "RT @a: " + "x" * 500})
    [both] = _theme_posts([long], [later])
    assert both.copies == 2, "a long post kept cut still folds with its full-length copy from a later minute"
