"""Comparing detector settings on the same recorded mentions, optionally against known incidents.

Each settings file (TOML) names a run: its sensitivity, bucket width, lateness
and any numeric detector setting to override. Every run replays the same
labelled mentions through the live alerter's functions; the comparison says,
per run, which incidents it opened and when, and, given a file of known
incidents (``brand,start,end``), which it caught, how late, what it missed and
what it raised that nobody would have wanted.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crisiswatch.contracts.schemas import Incident, IncidentEventType, ScoredMention
from crisiswatch.detection.config import DetectorConfig, Sensitivity
from crisiswatch.ingest.records import parse_timestamp

from .backtest import BrandReplay, replay, seed_states

TUNABLE = {f.name for f in fields(DetectorConfig) if f.type in ("float", "int", "timedelta") and f.name != "bucket"}


class RunSettings(BaseModel):
    """One settings file: what an analyst wants to try."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    sensitivity: Sensitivity = Sensitivity.BALANCED
    bucket_minutes: float = Field(default=1.0, gt=0)
    lateness_minutes: float = Field(default=2.0, ge=0)
    detector: dict[str, float] = Field(
        default_factory=dict, description="numeric DetectorConfig overrides; durations in minutes"
    )

    @field_validator("detector")
    @classmethod
    def _known_settings(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - TUNABLE)
        if unknown:
            raise ValueError(f"unknown detector settings {unknown}; tunable: {', '.join(sorted(TUNABLE))}")
        return value

    def config(self) -> DetectorConfig:
        """The detector configuration this run uses."""
        base = DetectorConfig(bucket=timedelta(minutes=self.bucket_minutes), sensitivity=self.sensitivity)
        return replace(base, **{name: _setting(getattr(base, name), value) for name, value in self.detector.items()})


def _setting(default: object, value: float) -> object:
    """A settings-file number in the type of the detector setting it overrides (durations are minutes)."""
    if isinstance(default, timedelta):
        return timedelta(minutes=value)
    return int(value) if isinstance(default, int) else float(value)


def load_settings(path: Path) -> RunSettings:
    """Read a settings file; the run is named after the file unless it says otherwise."""
    try:
        settings = RunSettings.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValidationError) as error:
        raise ValueError(f"{path}: {error}") from None
    return settings if settings.name else settings.model_copy(update={"name": path.stem})


@dataclass(frozen=True)
class KnownIncident:
    """A crisis that really happened (from the analyst's labels)."""

    brand: str
    start: datetime
    end: datetime


def load_known(path: Path) -> list[KnownIncident]:
    """Read ``brand,start,end`` rows (naive times are UTC)."""
    with path.open(encoding="utf-8", newline="") as handle:
        try:
            return [
                KnownIncident(row["brand"], parse_timestamp(row["start"]), parse_timestamp(row["end"]))
                for row in csv.DictReader(handle)
            ]
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: expected brand,start,end rows ({error})") from None


@dataclass
class Outcome:
    """How one run did against the known incidents."""

    caught: dict[KnownIncident, timedelta] = field(default_factory=dict)
    missed: list[KnownIncident] = field(default_factory=list)
    unwanted: list[Incident] = field(default_factory=list)


@dataclass
class RunResult:
    """One run: its settings, what the detector did per brand, and its incident openings."""

    settings: RunSettings
    replays: dict[str, BrandReplay]

    @property
    def opened(self) -> list[Incident]:
        """Every incident it opened, in time order."""
        events = [i for r in self.replays.values() for i in r.incidents if i.event is IncidentEventType.OPENED]
        return sorted(events, key=lambda incident: incident.opened_at)

    def against(self, known: Sequence[KnownIncident]) -> Outcome:
        """Caught (with the delay from the known start), missed, and unwanted incidents."""
        outcome = Outcome()
        matched: set[str] = set()
        for truth in known:
            hits = [i for i in self.opened if i.brand == truth.brand and truth.start <= i.opened_at <= truth.end]
            if hits:
                outcome.caught[truth] = hits[0].opened_at - truth.start
                matched.update(i.incident_id for i in hits)
            else:
                outcome.missed.append(truth)
        outcome.unwanted = [i for i in self.opened if i.incident_id not in matched]
        return outcome


def compare(
    mentions: Sequence[ScoredMention], runs: Sequence[RunSettings], history: Sequence[ScoredMention] = ()
) -> list[RunResult]:
    """Replay the same mentions once per settings; with ``history``, each run starts warm from it (its own settings)."""
    results = []
    for run in runs:
        config, lateness = run.config(), timedelta(minutes=run.lateness_minutes)
        seeds = seed_states(history, config, lateness) if history else None
        results.append(RunResult(run, replay(mentions, config, lateness, seeds)))
    return results


def summary_rows(results: Sequence[RunResult], known: Sequence[KnownIncident] | None) -> list[dict[str, str]]:
    """One row per run for the side-by-side table (and the report)."""
    rows = []
    for result in results:
        opened = result.opened
        row = {
            "run": result.settings.name,
            "settings": f"{result.settings.sensitivity.value}, {result.settings.bucket_minutes:g}-min buckets"
            + "".join(f", {k}={v:g}" for k, v in result.settings.detector.items()),
            "incidents": str(len(opened)),
            "first alerts": "; ".join(f"{i.brand} {i.opened_at:%m-%d %H:%M}" for i in opened[:4])
            + (" …" if len(opened) > 4 else ""),
        }
        if known is not None:
            outcome = result.against(known)
            delays = sorted(d.total_seconds() / 60 for d in outcome.caught.values())
            row |= {
                "caught": f"{len(outcome.caught)}/{len(known)}",
                "median delay": f"{delays[len(delays) // 2]:.0f} min" if delays else "—",
                "unwanted": str(len(outcome.unwanted)),
            }
        rows.append(row)
    return rows


def incident_spans(results: Sequence[RunResult], brand: str) -> Mapping[str, list[Incident]]:
    """Per run, the brand's incident events (for overlaying the runs on one chart)."""
    return {r.settings.name: r.replays[brand].incidents if brand in r.replays else [] for r in results}
