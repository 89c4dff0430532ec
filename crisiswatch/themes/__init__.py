"""What a crisis is about: near-duplicate folding, themes by meaning and the one-line summary (pure functions)."""
