"""The pieces of ``crisiswatch model finetune-e5`` that need no encoder: batching and the candidate list."""

from __future__ import annotations

import numpy as np

from crisiswatch.modeling.e5_finetune import FinetuneConfig, candidates_for, length_batches


def test_length_batches_cover_every_text_once_and_group_similar_lengths() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(3, 64, size=1000).tolist()
    batches = length_batches(lengths, 32, np.random.default_rng(1))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(1000))
    assert all(1 <= len(batch) <= 32 for batch in batches)
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 10, "a batch should pad little"


def test_length_batches_are_reproducible_by_seed() -> None:
    lengths = list(range(100))
    first = length_batches(lengths, 8, np.random.default_rng(3))
    assert first == length_batches(lengths, 8, np.random.default_rng(3))


def test_every_epoch_is_a_candidate_alone_and_blended_beside_the_ngrams() -> None:
    config = FinetuneConfig(epochs=2)
    candidates = candidates_for(config, (1.0, 0.4))
    assert [(c.epochs, c.share) for c in candidates] == [(0, 0.0), (1, 1.0), (1, 0.4), (2, 1.0), (2, 0.4)]
    labels = [c.label(config) for c in candidates]
    assert labels[0].startswith("n-grams") and "1 epochs" in labels[1] and labels[2].startswith("blend")
