"""Text normalisation applied identically in training and in inference.

Tweets carry handles and links that say nothing about sentiment but vary
endlessly; mapping them to fixed tokens (as the TweetEval benchmark does)
keeps the model's input distribution the same in training and in production.
"""

from __future__ import annotations

import re

_ESCAPED_UNICODE = re.compile(r"\\u([0-9a-fA-F]{4})")
_HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
_URL = re.compile(r"https?://\S+|www\.\S+")
_WHITESPACE = re.compile(r"\s+")


def normalise_for_model(text: str) -> str:
    """Return ``text`` with handles as ``@user``, links as ``http`` and whitespace collapsed."""
    text = _ESCAPED_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = _HANDLE.sub("@user", text)
    text = _URL.sub("http", text)
    return _WHITESPACE.sub(" ", text).strip()
