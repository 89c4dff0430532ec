"""What ``crisiswatch backtest`` runs around the engine: loading with progress, the files it writes, the summaries.

The engine (:mod:`.backtest`: ``replay``, ``seed_states``, ``BrandReplay``;
:mod:`.compare`: settings side by side) computes and writes nothing; this
module loads a recording with a progress bar, runs the engine and writes
``incidents.json``, ``buckets.csv`` and ``report.html`` (or ``compare.html``
and ``compare.json``) through :mod:`.report`. Keeping the writers here is what
lets the report build on the engine without the engine importing the report.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from crisiswatch.contracts.schemas import ScoredMention
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.state import DetectorState
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.ingest.records import DEFAULT_MAPPING, FieldMapping
from crisiswatch.ingest.sources import read_file

from .backtest import (
    BACKTEST_USER,
    BrandReplay,
    LoadedMentions,
    TeamVerdict,
    lazy_model_scorer,
    load_mentions,
    replay,
)
from .compare import KnownIncident, RunResult, RunSettings, compare, summary_rows
from .report import render_comparison_html, render_html


def incidents_json(replays: Mapping[str, BrandReplay]) -> str:
    """All incident events of a backtest as a JSON array."""
    events = [incident.model_dump(mode="json") for r in replays.values() for incident in r.incidents]
    return json.dumps(events, indent=2, ensure_ascii=False)


def bucket_rows(replays: Mapping[str, BrandReplay]) -> Iterator[dict[str, Any]]:
    """One row per brand and bucket: counts, expectation, surprise (for CSV export)."""
    for brand_replay in replays.values():
        for verdict in brand_replay.verdicts:
            yield {
                "brand": brand_replay.brand,
                "start": verdict.bucket.start.isoformat(),
                "total": verdict.bucket.total,
                "negative": verdict.bucket.negative,
                "reach_negative": verdict.bucket.reach_negative,
                "expected_negative": round(verdict.score.expected_negative, 4),
                "expected_total": round(verdict.score.expected_total, 4),
                "surprise": round(verdict.score.surprise, 3),
                "learning": int(verdict.learning),
                "events": ";".join(incident.event.value for incident in verdict.incidents),
            }


def write_outputs(
    replays: Mapping[str, BrandReplay], config: DetectorConfig, directory: Path, title: str, facts: Mapping[str, str]
) -> dict[str, Path]:
    """Write ``incidents.json``, ``buckets.csv`` and ``report.html`` into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in ("incidents.json", "buckets.csv", "report.html")}
    paths["incidents.json"].write_text(incidents_json(replays) + "\n", encoding="utf-8")
    rows = list(bucket_rows(replays))
    with paths["buckets.csv"].open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["brand", "start"])
        writer.writeheader()
        writer.writerows(rows)
    paths["report.html"].write_text(render_html(replays, config, title, facts), encoding="utf-8")
    return paths


@dataclass
class LabelledInput:
    """A loaded file with the facts a report states about it."""

    loaded: LoadedMentions
    facts: dict[str, str]


def load_with_progress(path: Path, brands: Path | None, mapping: str, label_field: str, model: str) -> LabelledInput:
    """Load and label a mentions file with a progress bar on stderr; rejected lines are listed (first five)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE

    console = Console(stderr=True)
    catalog = BrandCatalog.from_file(brands or DEFAULT_BRANDS_FILE)
    rows = sum(1 for _ in read_file(path))
    model_names: list[str] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("labelling mentions", total=rows)
        loaded = load_mentions(
            path,
            catalog,
            lazy_model_scorer(model, on_load=model_names.append),
            FieldMapping.parse(mapping) if mapping else DEFAULT_MAPPING,
            label_field,
            model_name=model,
            on_progress=lambda n: progress.advance(task, n),
        )
        progress.update(task, completed=rows)
    for line, reason in loaded.rejected[:5]:
        console.print(f"[yellow]line {line} rejected:[/] {reason}")
    facts = {
        "input": f"{path} ({rows} rows, {len(loaded.mentions)} mentions, {len(loaded.rejected)} rejected"
        + (f", {loaded.out_of_range} of them dated out of range" if loaded.out_of_range else "")
        + ")",
        "sentiment": f"{loaded.classified} classified by {model_names[0] if model_names else '—'}, "
        f"{len(loaded.mentions) - loaded.classified} labelled in the input",
    }
    return LabelledInput(loaded, facts)


def run_mentions_backtest(
    labelled: LabelledInput,
    path: Path,
    directory: Path,
    config: DetectorConfig,
    lateness: timedelta,
    seeds: Mapping[str, DetectorState] | None = None,
    verdicts: Sequence[TeamVerdict] = (),
) -> dict[str, BrandReplay]:
    """The ``crisiswatch backtest MENTIONS`` command: replay, write the outputs and summarise."""
    from rich.console import Console

    console = Console(stderr=True)
    replays = replay(labelled.loaded.mentions, config, lateness, seeds, verdicts)
    facts = labelled.facts | {
        "detector": f"{config.bucket.total_seconds() / 60:g}-minute buckets, sensitivity {config.sensitivity.value}, "
        f"lateness {lateness.total_seconds() / 60:g} min",
        "start": f"warm from history for {', '.join(sorted(seeds))}" if seeds else "cold: every brand learns first",
    }
    if verdicts:
        applied = sum(1 for r in replays.values() for i in r.incidents if i.acted_by == BACKTEST_USER)
        facts["team verdicts"] = f"{applied} of {len(verdicts)} applied (the rest found no incident open)"
    paths = write_outputs(replays, config, directory, f"crisiswatch backtest: {path.name}", facts)
    for brand, brand_replay in replays.items():
        opened = [i for i in brand_replay.incidents if i.event.value == "opened"]
        learning = sum(1 for v in brand_replay.verdicts if v.learning)
        learnt = f" ({learning} while learning)" if learning else ""
        console.print(f"{brand}: {len(brand_replay.verdicts)} buckets{learnt}, {len(opened)} incidents")
        for incident in opened:
            console.print(f"  {incident.opened_at:%Y-%m-%d %H:%M} UTC {incident.severity.value}: {incident.rule}")
    console.print(f"report: {paths['report.html']} · incidents: {paths['incidents.json']}")
    return replays


def run_comparison(
    labelled: LabelledInput,
    path: Path,
    directory: Path,
    runs: Sequence[RunSettings],
    known: Sequence[KnownIncident],
    history: Sequence[ScoredMention] = (),
) -> list[RunResult]:
    """``crisiswatch backtest MENTIONS --compare A.toml --compare B.toml``: a table, compare.html, compare.json."""
    from rich.console import Console
    from rich.table import Table

    results = compare(labelled.loaded.mentions, runs, history)
    rows = summary_rows(results, known or None)
    table = Table(*rows[0], title=f"{path.name}: {len(runs)} settings compared")
    for row in rows:
        table.add_row(*row.values())
    Console().print(table)
    directory.mkdir(parents=True, exist_ok=True)
    facts = labelled.facts | {
        "known incidents": str(len(known)) if known else "none given",
        "start": "warm from the history given" if history else "cold: every brand learns first",
    }
    report = render_comparison_html(results, rows, known, f"crisiswatch comparison: {path.name}", facts)
    (directory / "compare.html").write_text(report, encoding="utf-8")
    (directory / "compare.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    Console(stderr=True).print(f"report: {directory / 'compare.html'} · table: {directory / 'compare.json'}")
    return results
