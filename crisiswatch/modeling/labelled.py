"""Reading labelled sentiment files (TSV ``text<TAB>label`` or JSONL), in the label scheme of their source."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from crisiswatch.contracts.schemas import SENTIMENT_ORDER, Sentiment

_NAMES = {s.value: s for s in Sentiment} | {
    "neg": Sentiment.NEGATIVE,
    "neu": Sentiment.NEUTRAL,
    "pos": Sentiment.POSITIVE,
}


@dataclass(frozen=True)
class LabelledText:
    """One text with its gold sentiment."""

    text: str
    label: Sentiment


LABEL_SCHEMES: dict[str, tuple[Sentiment, ...]] = {
    "semeval": SENTIMENT_ORDER,
    "hebrew": (Sentiment.POSITIVE, Sentiment.NEGATIVE, Sentiment.NEUTRAL),
}
"""What the numeric labels 0/1/2 mean in each source's files.

SemEval (and TweetEval): negative, neutral, positive. The Hebrew sentiment
set (comments on a public figure's posts): positive, negative, off-topic;
off-topic is read as neutral, which is what it means to a crisis detector.
"""


def parse_label(value: object, scheme: str = "semeval") -> Sentiment:
    """Accept 0/1/2 (in the order of ``scheme``, see :data:`LABEL_SCHEMES`) or a class name."""
    token = str(value).strip().lower()
    if token in {"0", "1", "2"}:
        return LABEL_SCHEMES[scheme][int(token)]
    if token in _NAMES:
        return _NAMES[token]
    raise ValueError(f"unknown sentiment label {value!r}; expected 0/1/2 or negative/neutral/positive")


def read_labelled(path: Path, scheme: str = "semeval") -> list[LabelledText]:
    """Read a labelled file whose numeric labels follow ``scheme``; a TSV may start with a ``…<TAB>label`` header.

    The text is the first column and the label the last.
    """
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}; expected one of {', '.join(LABEL_SCHEMES)}")
    rows: list[LabelledText] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix in {".jsonl", ".json"}:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                try:
                    rows.append(LabelledText(str(record["text"]), parse_label(record["label"], scheme)))
                except (KeyError, ValueError) as error:
                    raise ValueError(f"{path}:{number}: {error}") from error
            return rows
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for number, fields in enumerate(reader, start=1):
            if number == 1 and len(fields) >= 2 and fields[-1].strip().lower() == "label":
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: expected text<TAB>label, got {len(fields)} field(s)")
            try:
                rows.append(LabelledText(fields[0], parse_label(fields[-1], scheme)))
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return rows
