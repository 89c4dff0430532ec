"""Text normalisation applied identically in training and in inference.

Tweets carry handles and links that say nothing about sentiment but vary
endlessly; mapping them to fixed tokens (as the TweetEval benchmark does)
keeps the model's input distribution the same in training and in production.

``normalise_for_model`` is the reference, in Python. ``with_normalisation``
puts the same rewrites into a Rust tokenizer's own normaliser, so a whole
batch is normalised and tokenised in parallel without holding the GIL (only
``decode_escapes`` stays in Python, and it touches only texts that need it).
"""

from __future__ import annotations

import re

from tokenizers import Regex, Tokenizer, normalizers

# Every character Python counts as whitespace, spelt out so Python's `re` and
# the tokenizer's Oniguruma read these patterns alike (their \s, \w differ).
_SPACE = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_ESCAPED_UNICODE = re.compile(r"\\u([0-9a-fA-F]{4})")
_HANDLE = re.compile(r"(?<![A-Za-z0-9_@])@[A-Za-z0-9_]{1,30}")
_URL = re.compile(f"https?://[^{_SPACE}]+|www\\.[^{_SPACE}]+")
_WHITESPACE = re.compile(f"[{_SPACE}]+")


def decode_escapes(text: str) -> str:
    r"""Return ``text`` with literal ``\uXXXX`` escapes (as some tweet dumps carry them) decoded.

    Escaped surrogate pairs (how such dumps spell emoji) become the one
    character they stand for; an unpaired one becomes U+FFFD, since no
    tokenizer takes a lone surrogate.
    """
    if "\\u" not in text:
        return text
    decoded = _ESCAPED_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def normalise_for_model(text: str) -> str:
    """Return ``text`` with handles as ``@user``, links as ``http`` and whitespace collapsed."""
    text = _HANDLE.sub("@user", decode_escapes(text))
    text = _URL.sub("http", text)
    return _WHITESPACE.sub(" ", text).strip()


def with_normalisation(tokenizer: Tokenizer) -> Tokenizer:
    """A copy of ``tokenizer`` whose normaliser first applies ``normalise_for_model``'s rewrites.

    Encoding ``decode_escapes(text)`` with the copy gives the same ids as
    encoding ``normalise_for_model(text)`` with the original.
    """
    rewritten = Tokenizer.from_str(tokenizer.to_str())
    steps: list[normalizers.Normalizer] = [
        normalizers.Replace(Regex(_HANDLE.pattern), "@user"),
        normalizers.Replace(Regex(_URL.pattern), "http"),
        normalizers.Replace(Regex(_WHITESPACE.pattern), " "),
        normalizers.Strip(),
    ]
    if tokenizer.normalizer is not None:
        steps.append(tokenizer.normalizer)
    rewritten.normalizer = normalizers.Sequence(steps)
    return rewritten
