"""Themes by meaning, measured and on files: ``crisiswatch eval-themes`` and ``crisiswatch themes FILE``.

The evaluation runs :func:`crisiswatch.themes.clustering.find_themes` on the
labelled sets of :mod:`crisiswatch.analysis.theme_set` (a dev set from one
half of the phrase pools, a test set from the other half and another seed,
and for each half 20 small incidents of 40 posts about two reasons, the size
an alert sees) and scores it against two baselines: k-means with k = 8 (the number of
reasons, which a real alert would not know) on the same LSA vectors, and the
keyword theme of ``templates.toml`` post by post (what the alert gives
today).

Figures: purity (over the posts in a theme: the share that belong to their
theme's most common reason), normalised mutual information between theme
and reason (over all posts, posts in no theme or "other" counted as one more
label), the share of posts in a theme that is not "other", and the number of
themes.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from crisiswatch.analysis.theme_set import Split, ThemeRow, incident_rows, theme_rows
from crisiswatch.themes.clustering import (
    DEFAULT_KNOBS,
    Anchor,
    Knobs,
    anchor_hits,
    anchors_from_templates,
    clean,
    embed,
    find_themes,
)
from crisiswatch.themes.folding import fold_key

GRID: dict[str, tuple[float, ...]] = {
    "dimensions": (50, 100),
    "grain_share": (0.0025, 0.005, 0.01),
    "attach_similarity": (0.1, 0.2, 0.3),
    "anchor_weight": (0.0, 0.5, 1.0),
}
"""The knobs tried on the dev sets; the rest of the method is fixed."""
GRID_SEEDS = (1, 2, 3)
"""Seeds of the large dev sets the grid is scored on."""
INCIDENTS = 20
"""Small incidents per evaluation, each of :data:`INCIDENT_POSTS` posts about two reasons."""
INCIDENT_POSTS = 40
NAMED_FLOOR = 0.85
"""A knob setting must put at least this share of the posts in a theme to be chosen."""
GRID_RULE = (
    "the best NMI, averaged over the large dev sets (seeds 1-3) and the small dev incidents (20 × 40 posts, "
    "two reasons) with equal weight, among the settings that put at least 85% of the posts in a theme"
)
"""How the knobs are chosen from the grid (on dev sets only)."""


def default_templates() -> Path:
    """The alerter's ``templates.toml`` as installed, found without importing the alerter (a layer above)."""
    spec = importlib.util.find_spec("crisiswatch.alerter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("crisiswatch.alerter is not installed; pass --anchors TEMPLATES.toml")
    return Path(next(iter(spec.submodule_search_locations))) / "templates.toml"


def _metrics(reasons: Sequence[str], labels: Sequence[int | str], unnamed: int | str) -> dict[str, float]:
    named = [(label, reason) for label, reason in zip(labels, reasons, strict=True) if label != unnamed]
    by_label: dict[int | str, Counter[str]] = {}
    for label, reason in named:
        by_label.setdefault(label, Counter())[reason] += 1
    majority = sum(counts.most_common(1)[0][1] for counts in by_label.values())
    return {
        "posts": len(reasons),
        "themes": len(by_label),
        "named": len(named) / max(len(reasons), 1),
        "purity": majority / max(len(named), 1),
        "nmi": float(normalized_mutual_info_score(list(reasons), [str(label) for label in labels])),
    }


def keyword_themes(texts: Sequence[str], anchors: Sequence[Anchor]) -> list[str]:
    """The keyword theme of each post alone: the first anchor (file order) whose keywords occur, else "other"."""
    hits = anchor_hits([clean(text) for text in texts], anchors)
    return [anchors[int(row.argmax())].name if row.any() else "other" for row in hits]


def kmeans_themes(texts: Sequence[str], clusters: int = 8, seed: int = 0) -> list[int]:
    """K-means on the same LSA vectors as the method (copies folded and weighted), as the naive baseline."""
    first: dict[str, int] = {}
    rows = [first.setdefault(fold_key(text), len(first)) for text in texts]
    distinct = list(first.values())
    originals = {row: index for index, row in reversed(list(enumerate(rows)))}
    vectors = embed([clean(texts[originals[row]]) for row in distinct], seed=seed)
    weights = np.bincount(rows, minlength=len(distinct))
    labels = KMeans(n_clusters=min(clusters, len(distinct)), n_init=10, random_state=seed).fit_predict(
        vectors, sample_weight=weights
    )
    return [int(labels[row]) for row in rows]


def evaluate_themes(
    rows: Sequence[ThemeRow], anchors: Sequence[Anchor] | None = None, knobs: Knobs = DEFAULT_KNOBS, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Figures for the method and the two baselines on labelled rows (anchors: the installed templates)."""
    anchors = anchors_from_templates(default_templates()) if anchors is None else anchors
    texts = [row.text for row in rows]
    reasons = [row.reason for row in rows]
    started = time.perf_counter()
    found = find_themes(texts, anchors, seed=seed, knobs=knobs)
    seconds = time.perf_counter() - started
    ours = _metrics(reasons, found.assignment, -1) | {"seconds": seconds}
    return {
        "themes by meaning": ours,
        "k-means, k=8 (LSA)": _metrics(reasons, kmeans_themes(texts, seed=seed), -1),
        "keyword theme (today)": _metrics(reasons, keyword_themes(texts, anchors), "other"),
    }


def evaluate_incidents(
    sets: Sequence[Sequence[ThemeRow]], anchors: Sequence[Anchor] | None = None, knobs: Knobs = DEFAULT_KNOBS
) -> dict[str, dict[str, float]]:
    """:func:`evaluate_themes` on many small labelled sets, each figure averaged over the sets (posts: summed)."""
    anchors = anchors_from_templates(default_templates()) if anchors is None else anchors
    each = [evaluate_themes(rows, anchors, knobs) for rows in sets]
    combined: dict[str, dict[str, float]] = {}
    for method in each[0]:
        columns = {name: [figures[method][name] for figures in each] for name in each[0][method]}
        combined[method] = {
            name: float(np.sum(values) if name == "posts" else np.mean(values)) for name, values in columns.items()
        }
    return combined


@dataclass(frozen=True)
class GridResult:
    """The knobs chosen on the dev sets and every setting's figures there: (NMI, share in a theme)."""

    chosen: Knobs
    scores: dict[Knobs, tuple[float, float]]


def choose_knobs(size: int = 2000) -> GridResult:
    """Score every :data:`GRID` setting on the dev sets and keep the best, by the rule of :data:`GRID_RULE`."""
    anchors = anchors_from_templates(default_templates())
    large = [theme_rows(seed, size, "dev") for seed in GRID_SEEDS]
    small = _incidents(GRID_SEEDS[0], "dev")
    scores: dict[Knobs, tuple[float, float]] = {}
    for values in itertools.product(*GRID.values()):
        knobs = replace(DEFAULT_KNOBS, **dict(zip(GRID, values, strict=True)))
        ours = [evaluate_incidents(group, anchors, knobs)["themes by meaning"] for group in ([*large], small)]
        scores[knobs] = (float(np.mean([f["nmi"] for f in ours])), float(np.mean([f["named"] for f in ours])))
    eligible = [k for k, (_, named) in scores.items() if named >= NAMED_FLOOR] or list(scores)
    return GridResult(chosen=max(eligible, key=lambda k: scores[k][0]), scores=scores)


def _records(path: Path, fmt: str, column: str) -> Iterator[tuple[Any, str | None, str | None]]:
    """(id, text, error) per input line or CSV record; a line that cannot be read carries its error instead."""
    kind = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        if kind == "csv":
            for number, record in enumerate(csv.DictReader(handle), start=1):
                text = record.get(column)
                ident = record.get("id") or number
                yield (ident, text, None) if text else (ident, None, f"no {column!r} text")
            return
        if kind != "jsonl":
            raise typer.BadParameter(f"format {kind!r}: use jsonl or csv")
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                yield number, None, "not JSON"
                continue
            if not isinstance(record, dict):
                yield number, None, "not a JSON object"
                continue
            text = record.get(column)
            ident = record.get("id", number)
            ident = ident if isinstance(ident, str | int) and not isinstance(ident, bool) else number
            yield (ident, text, None) if isinstance(text, str) and text else (ident, None, f"no {column!r} text")


def themes_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="posts: JSONL or CSV")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv (default: by the file's suffix)")] = "",
    column: Annotated[str, typer.Option(help="the field or column that holds the post's text")] = "text",
    anchors: Annotated[
        Path | None, typer.Option(help="templates TOML whose [themes.*] keywords name themes (default: installed)")
    ] = None,
) -> None:
    """Group posts into themes by meaning; one JSON line per input line: id, theme, theme_id, duplicate_of."""
    # A line without a readable text gets theme_id -1 and its error, so the output stays line for line.
    try:
        configured = anchors_from_templates(anchors or default_templates())
    except (OSError, ValueError) as error:
        raise typer.BadParameter(f"anchors: {error}") from None
    records = list(_records(path, fmt, column))
    readable = [index for index, (_, text, _) in enumerate(records) if text is not None]
    found = find_themes([records[i][1] or "" for i in readable], configured)
    labels = {theme.theme_id: theme.label for theme in found.themes}
    result: dict[int, dict[str, Any]] = {}
    for position, index in enumerate(readable):
        theme_id = found.assignment[position]
        original = found.duplicate_of[position]
        result[index] = {
            "theme": labels.get(theme_id),
            "theme_id": theme_id,
            "duplicate_of": None if original is None else records[readable[original]][0],
        }
    for index, (ident, _, error) in enumerate(records):
        line = {"id": ident} | result.get(index, {"theme": None, "theme_id": -1, "duplicate_of": None, "error": error})
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")


def _incidents(seed: int, split: Split) -> list[list[ThemeRow]]:
    return [incident_rows(seed * 1000 + i, INCIDENT_POSTS, split) for i in range(INCIDENTS)]


def eval_themes_command(
    seed: Annotated[int, typer.Option(help="seed of the dev set (the test set uses seed + 1)")] = 1,
    size: Annotated[int, typer.Option(min=10, help="posts per set")] = 2000,
    grid: Annotated[bool, typer.Option(help="also rerun the knob grid on the dev sets")] = False,
) -> None:
    """Score themes by meaning and the baselines on a dev set and a test set (other phrasings, other seed)."""
    console = Console()
    table = Table("set", "method", "posts", "themes", "in a theme", "purity", "NMI", "seconds", title="themes")
    sets = (
        (f"dev (seed {seed})", [theme_rows(seed, size, "dev")]),
        (f"test (seed {seed + 1})", [theme_rows(seed + 1, size, "test")]),
        (f"dev incidents ({INCIDENTS} × {INCIDENT_POSTS})", _incidents(seed, "dev")),
        (f"test incidents ({INCIDENTS} × {INCIDENT_POSTS})", _incidents(seed + 1, "test")),
    )
    for name, group in sets:
        for method, figures in evaluate_incidents(group).items():
            table.add_row(
                name,
                method,
                f"{figures['posts']:,.0f}",
                f"{figures['themes']:.1f}",
                f"{figures['named']:.1%}",
                f"{figures['purity']:.1%}",
                f"{figures['nmi']:.3f}",
                f"{figures['seconds']:.2f}" if "seconds" in figures else "",
            )
    console.print(table)
    if grid:
        result = choose_knobs(size)
        choices = Table(
            "dimensions", "grain share", "attach", "anchor weight", "dev NMI", "dev in a theme", title="knob grid (dev)"
        )
        for knobs, (nmi, named) in sorted(result.scores.items(), key=lambda item: -item[1][0]):
            style = "bold" if knobs == result.chosen else None
            choices.add_row(
                str(knobs.dimensions),
                f"{knobs.grain_share:g}",
                f"{knobs.attach_similarity:g}",
                f"{knobs.anchor_weight:g}",
                f"{nmi:.3f}",
                f"{named:.1%}",
                style=style,
            )
        console.print(choices)
        same = "the defaults" if result.chosen == DEFAULT_KNOBS else f"NOT the defaults ({DEFAULT_KNOBS})"
        console.print(f"chosen (bold) by {GRID_RULE}: {result.chosen}, {same}")
