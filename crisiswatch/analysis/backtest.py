"""Backtesting a recorded stream of mentions: label what is unlabelled, count, detect, keep every verdict.

Runs the live alerter's own pure functions (``windows.add_mention`` /
``close_ready`` and ``lifecycle.judge``) over a file instead of a topic, so what
a backtest reports is what the alerter would have done with the same mentions
and settings. Mentions are fed in event-time order; the lateness allowance still
applies, as it would live.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crisiswatch.contracts.schemas import (
    ActionKind,
    Incident,
    IncidentAction,
    Mention,
    RejectionCode,
    ScoredMention,
    Sentiment,
    SentimentScores,
)
from crisiswatch.detection.actions import apply_action
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.lifecycle import judge, warm_start
from crisiswatch.detection.state import BucketVerdict, DetectorState
from crisiswatch.detection.windows import BrandBuckets, add_mention, close_ready
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.ingest.records import (
    DEFAULT_MAPPING,
    EventTimeBounds,
    FieldMapping,
    RejectedInput,
    decode_json_object,
    parse_timestamp,
    recording_span,
    to_mentions,
)
from crisiswatch.ingest.scenario import Scenario, generate
from crisiswatch.ingest.sources import event_time, read_file

LABELLED_MODEL = "labelled-input"
BACKTEST_USER = "backtest"
"""Who presses the buttons a backtest replays from a verdicts file."""
HISTORY_BOUNDS = EventTimeBounds.history()
"""Every event time the wire contract takes (1970 to 2200): a backtest narrows it to its recording's own span."""
SENTIMENT_ALIASES = {"neg": Sentiment.NEGATIVE, "neu": Sentiment.NEUTRAL, "pos": Sentiment.POSITIVE}
ScoreTexts = Callable[[Sequence[str]], list[SentimentScores]]


@dataclass
class LoadedMentions:
    """A file's mentions ready for the detector, and what could not be used (line, reason)."""

    mentions: list[ScoredMention]
    rejected: list[tuple[int, str]] = field(default_factory=list)
    classified: int = 0
    out_of_range: int = 0
    """Rejected rows (also in ``rejected``) whose time lay outside the history bounds: skipped, and said so."""


@dataclass
class BrandReplay:
    """Everything the detector decided for one brand, bucket by bucket."""

    brand: str
    verdicts: list[BucketVerdict] = field(default_factory=list)

    @property
    def incidents(self) -> list[Incident]:
        """Every incident event, in order."""
        return [incident for verdict in self.verdicts for incident in verdict.incidents]


def parse_sentiment(value: Any) -> Sentiment | None:
    """A label given in the input (negative/neutral/positive, any case, or neg/neu/pos); None when absent."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text in SENTIMENT_ALIASES:
        return SENTIMENT_ALIASES[text]
    try:
        return Sentiment(text)
    except ValueError:
        raise RejectedInput(f"sentiment {str(value)[:32]!r} is not negative, neutral or positive") from None


def field_value(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``truth.sentiment``), or None."""
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def one_hot(label: Sentiment) -> SentimentScores:
    """Scores for a mention whose label was given rather than predicted."""
    return SentimentScores(**{sentiment.value: float(sentiment is label) for sentiment in Sentiment})


def truth_labelled(scenario: Scenario, model: str = LABELLED_MODEL) -> list[ScoredMention]:
    """A generated scenario as scored mentions labelled with the sentiment it generated (no model involved)."""
    names = {traffic.brand: traffic.display_name for traffic in scenario.brands}
    mentions = []
    for record in generate(scenario):
        label = Sentiment(record["truth"]["sentiment"])
        fields = {k: v for k, v in record.items() if k in Mention.model_fields}
        fields["brand_name"] = names.get(record["brand"], "")
        mentions.append(ScoredMention(**fields, label=label, scores=one_hot(label), model=model))
    return mentions


def scored(mention: Mention, scores: SentimentScores, label: Sentiment, model: str) -> ScoredMention:
    """``mention`` with its sentiment."""
    return ScoredMention(**mention.model_dump(), label=label, scores=scores, model=model)


def predicted_label(scores: SentimentScores) -> Sentiment:
    """The most probable class."""
    return max(Sentiment, key=lambda sentiment: getattr(scores, sentiment.value))


def load_mentions(
    path: Path,
    catalog: BrandCatalog,
    score_texts: ScoreTexts | None,
    mapping: FieldMapping = DEFAULT_MAPPING,
    label_field: str = "sentiment",
    model_name: str = "model",
    batch: int = 4096,
    on_progress: Callable[[int], None] | None = None,
    bounds: EventTimeBounds | None = None,
    now: datetime | None = None,
) -> LoadedMentions:
    """Read, validate and label a JSONL/CSV file; only rows without a label go through ``score_texts``.

    A recording is history: by default its rows are judged against the
    recording's own span (:func:`recording_span`, from the times of its rows),
    never the wall clock, so a file from 2015 loads whole while one row dated
    decades away from the rest (which would stall its brand's windows) is
    rejected as the listener would in a replay of history. ``bounds`` (at
    ``now``) overrides that. Raises ``ValueError`` when some rows need the
    model and none was given.
    """
    moment = now or datetime.now(UTC)
    if bounds is None:
        times = (event_time(raw, mapping) for raw in read_file(path))
        bounds = EventTimeBounds.history(recording_span(t for t in times if t is not None))
    loaded = LoadedMentions(mentions=[])
    unlabelled: list[Mention] = []

    def flush() -> None:
        if not unlabelled:
            return
        if score_texts is None:
            raise ValueError("some mentions carry no sentiment label and no model was given to classify them")
        for mention, scores in zip(unlabelled, score_texts([m.text for m in unlabelled]), strict=True):
            loaded.mentions.append(scored(mention, scores, predicted_label(scores), model_name))
        loaded.classified += len(unlabelled)
        if on_progress:
            on_progress(len(unlabelled))
        unlabelled.clear()

    for line, raw in enumerate(read_file(path), start=1):
        try:
            record: Mapping[str, Any] = raw if isinstance(raw, Mapping) else decode_json_object(raw)
            label = parse_sentiment(field_value(record, label_field))
            mentions = to_mentions(record, catalog, mapping, path.name, bounds, moment)
        except RejectedInput as error:
            loaded.rejected.append((line, error.reason))
            loaded.out_of_range += error.code is RejectionCode.TIME_OUT_OF_RANGE
            continue
        if label is None:
            unlabelled.extend(mentions)
            if len(unlabelled) >= batch:
                flush()
        else:
            loaded.mentions.extend(scored(m, one_hot(label), label, LABELLED_MODEL) for m in mentions)
            if on_progress:
                on_progress(len(mentions))
    flush()
    return loaded


@dataclass(frozen=True)
class TeamVerdict:
    """The team's word on the incident a brand had open at ``at``: ``not_a_crisis`` closes it as a false alarm."""

    brand: str
    at: datetime
    kind: ActionKind = ActionKind.NOT_A_CRISIS


def load_verdicts(path: Path) -> list[TeamVerdict]:
    """Read ``brand,at[,verdict]`` rows (naive times are UTC; the verdict defaults to ``not_a_crisis``)."""
    verdicts = []
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                kind = ActionKind((row.get("verdict") or ActionKind.NOT_A_CRISIS.value).strip())
                if kind not in (ActionKind.NOT_A_CRISIS, ActionKind.RESOLVE):
                    raise ValueError(f"verdict {kind.value!r} is not not_a_crisis or resolve")
                verdicts.append(TeamVerdict(row["brand"].strip(), parse_timestamp(row["at"]), kind))
            except (KeyError, ValueError, AttributeError) as error:
                raise ValueError(f"{path}:{line}: expected brand,at[,verdict] ({error})") from None
    return sorted(verdicts, key=lambda v: v.at)


def replay(
    mentions: Iterable[ScoredMention],
    config: DetectorConfig,
    lateness: timedelta = timedelta(minutes=2),
    seeds: Mapping[str, DetectorState] | None = None,
    verdicts: Sequence[TeamVerdict] = (),
) -> dict[str, BrandReplay]:
    """Run every brand's mentions, in event-time order, through the live alerter's buckets and detector.

    A brand in ``seeds`` starts from that state (see :func:`seed_states`)
    instead of learning from nothing. Each of ``verdicts`` is applied as the
    team's button press at its time to the incident the brand then has open,
    through the same :func:`apply_action` the alerter runs.
    """
    return _replay(mentions, config, lateness, seeds or {}, verdicts)[0]


def _replay(
    mentions: Iterable[ScoredMention],
    config: DetectorConfig,
    lateness: timedelta,
    seeds: Mapping[str, DetectorState],
    verdicts: Sequence[TeamVerdict],
) -> tuple[dict[str, BrandReplay], dict[str, DetectorState]]:
    buckets: dict[str, BrandBuckets] = {}
    states: dict[str, DetectorState] = {}
    replays: dict[str, BrandReplay] = {}
    pending: dict[str, list[TeamVerdict]] = {}
    for verdict in verdicts:
        pending.setdefault(verdict.brand, []).append(verdict)

    def advance(brand: str, now: datetime | None = None) -> None:
        closed = close_ready(buckets[brand], config.bucket, lateness, now=now)
        if closed:
            states[brand], judged = judge(states[brand], closed, config)
            replays[brand].verdicts.extend(judged)
            apply_verdicts(brand, closed[-1].start + config.bucket)

    def apply_verdicts(brand: str, until: datetime) -> None:
        waiting = pending.get(brand, [])
        while waiting and waiting[0].at <= until:
            verdict = waiting.pop(0)
            incident = states[brand].incident
            if incident is None:
                continue
            action = IncidentAction(
                incident_id=incident.incident_id,
                brand=brand,
                kind=verdict.kind,
                user_id=BACKTEST_USER,
                acted_at=max(verdict.at, incident.opened_at),
            )
            states[brand], _, incidents = apply_action(states[brand], action, config)
            if incidents and replays[brand].verdicts:
                replays[brand].verdicts[-1].incidents.extend(incidents)

    for mention in sorted(mentions, key=lambda m: m.created_at):
        brand = mention.brand
        if brand not in buckets:
            buckets[brand] = BrandBuckets()
            seed = seeds.get(brand)
            states[brand] = seed.model_copy() if seed is not None else DetectorState.fresh(brand, config)
            states[brand].brand_name = mention.brand_name or states[brand].brand_name
            replays[brand] = BrandReplay(brand)
        add_mention(buckets[brand], mention, config.bucket)
        advance(brand)
    for brand, brand_buckets in buckets.items():
        if brand_buckets.watermark is not None:
            advance(brand, now=brand_buckets.watermark + lateness + config.bucket)
    return dict(sorted(replays.items())), dict(sorted(states.items()))


def seed_states(
    mentions: Iterable[ScoredMention], config: DetectorConfig, lateness: timedelta = timedelta(minutes=2)
) -> dict[str, DetectorState]:
    """Each brand's detector state learnt from recorded history, ready to start warm (no open incident).

    The history runs through the same replay as a backtest, so a seeded brand
    knows exactly what the live alerter would have learnt had it watched that
    history.
    """
    _, states = _replay(mentions, config, lateness, {}, ())
    return {brand: warm_start(state) for brand, state in states.items()}


def lazy_model_scorer(reference: str, on_load: Callable[[str], None] | None = None) -> ScoreTexts:
    """A ``ScoreTexts`` that loads the classifier's model on first use, so labelled files never import torch."""
    loaded: list[Any] = []

    def score_texts(texts: Sequence[str]) -> list[SentimentScores]:
        if not loaded:
            from crisiswatch.sentiment.model import SentimentModel

            loaded.append(SentimentModel.load(reference))
            if on_load:
                on_load(loaded[0].name)
        return loaded[0].predict(texts)

    return score_texts
