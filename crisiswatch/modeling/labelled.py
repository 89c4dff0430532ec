"""Reading labelled sentiment files (TSV ``text<TAB>label`` or JSONL)."""

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


def parse_label(value: object) -> Sentiment:
    """Accept 0/1/2 (negative/neutral/positive, the SemEval order) or a class name."""
    token = str(value).strip().lower()
    if token in {"0", "1", "2"}:
        return SENTIMENT_ORDER[int(token)]
    if token in _NAMES:
        return _NAMES[token]
    raise ValueError(f"unknown sentiment label {value!r}; expected 0/1/2 or negative/neutral/positive")


def read_labelled(path: Path) -> list[LabelledText]:
    """Read a labelled file; a TSV may start with a ``text<TAB>label`` header line."""
    rows: list[LabelledText] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix in {".jsonl", ".json"}:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                try:
                    rows.append(LabelledText(str(record["text"]), parse_label(record["label"])))
                except (KeyError, ValueError) as error:
                    raise ValueError(f"{path}:{number}: {error}") from error
            return rows
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for number, fields in enumerate(reader, start=1):
            if number == 1 and [f.lower() for f in fields[:2]] == ["text", "label"]:
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: expected text<TAB>label, got {len(fields)} field(s)")
            try:
                rows.append(LabelledText(fields[0], parse_label(fields[-1])))
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return rows
