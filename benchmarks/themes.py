"""``python -m benchmarks.themes``: the time of an alert's themes, on the alerter's own code path, encoder warm.

An alert groups at most 150 sampled posts (``Incident.theme_posts``). This
builds incidents whose posts are 150 real complaints (a fresh sample per run,
from a labelled set in ``shared/data/themes``; tweets to brands by default),
loads and warms the encoders as the alerter does at start-up
(:func:`crisiswatch.themes.encoding.warm_encoders`), then times
:func:`crisiswatch.alerter.alert_themes.themes_for`, which the alert
composer awaits, run after run: once with the posts marked English (the
English encoder reads them) and once unidentified (the multilingual one). Each other installed encoder, and words only,
is timed the same way through :func:`crisiswatch.themes.incidents.incident_themes`
(what ``themes_for`` runs in its worker thread) for comparison.

It prints wall and CPU seconds (median and max over the runs) and the load
average: on a machine shared with other work, wall time says as much about
the neighbours as about the grouping; the process's CPU seconds say less.
The target is a median wall time of at most 2 s on 2 CPU cores. The shipped
encoder remembers the texts it encoded, so an incident's next revision (the
same posts less 20, plus 20 new ones) is timed too; the first grouping of
each run starts with nothing remembered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crisiswatch.alerter.alert_themes import anchors, themes_for
from crisiswatch.alerter.replies import load_templates
from crisiswatch.analysis.real_themes import DEFAULT_DIR, LOADERS, LabelledPost, load_sets
from crisiswatch.contracts.schemas import THEME_TEXT_CHARS, Incident, IncidentEventType, SampleMention, Severity
from crisiswatch.themes.clustering import find_themes
from crisiswatch.themes.encoding import (
    RememberingEncoder,
    encoder_name_for,
    installed_encoders,
    load_encoder,
    shipped_encoder,
    warm_encoders,
)
from crisiswatch.themes.incidents import incident_themes

POSTS = 150
"""Posts an alert groups at most."""
UPDATE_NEW = 20
"""New posts in the timed next revision of an incident (the rest were grouped, so encoded, before)."""
TARGET_S = 2.0
"""The most a 150-post grouping may take (median wall seconds, 2 CPU cores)."""


def incident_with(texts: Sequence[str], lang: str = "und") -> Incident:
    """An open incident whose sampled posts are ``texts`` (one copy each, in ``lang``), as the detector sends it."""
    now = datetime.now(UTC)
    posts = [
        SampleMention(
            id=str(i),
            text=text[:THEME_TEXT_CHARS],
            author_handle=f"user{i}",
            author_followers=100,
            url=None,
            created_at=now,
            negative_score=0.9,
            lang=lang,
        )
        for i, text in enumerate(texts)
    ]
    return Incident(
        incident_id="bench-themes",
        revision=1,
        event=IncidentEventType.OPENED,
        brand="bench-brand",
        severity=Severity.WARNING,
        window_start=now - timedelta(minutes=15),
        window_end=now,
        opened_at=now,
        observed_negative=len(posts),
        expected_negative=5.0,
        observed_total=len(posts) * 2,
        expected_total=100.0,
        negative_share=0.5,
        baseline_negative_share=0.05,
        surprise=12.0,
        rule="bench",
        sample_mentions=posts[:5],
        theme_posts=posts,
    )


def timed(group: Callable[[Any], object], samples: Sequence[Any]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``group`` on each sample in turn."""
    walls, cpus = [], []
    for incident in samples:
        wall, cpu = time.perf_counter(), time.process_time()
        group(incident)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def line(name: str, walls: Sequence[float], cpus: Sequence[float]) -> str:
    """One result line: medians and maxima of wall and CPU seconds."""
    return (
        f"{name:<50} wall median {statistics.median(walls):5.2f} s (max {max(walls):5.2f})   "
        f"CPU median {statistics.median(cpus):5.2f} s (max {max(cpus):5.2f})"
    )


def machine() -> str:
    """The CPU model and the cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def main(argv: Sequence[str] | None = None) -> int:
    """Time alert-sized groupings; exit 1 when the shipped path's median is over :data:`TARGET_S`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR, help="folder of the real labelled sets")
    parser.add_argument("--set", default="twitter_complaints", choices=sorted(LOADERS), help="the posts' set")
    parser.add_argument("--runs", type=int, default=5, help="groupings timed per encoder")
    parser.add_argument("--seed", type=int, default=29)
    args = parser.parse_args(argv)
    found = load_sets(args.data, [args.set]).get(args.set)
    if not found or len(found) < POSTS:
        parser.error(f"no set {args.set!r} of {POSTS}+ posts under {args.data} (see shared/data/README.md)")
    rng = random.Random(args.seed)
    cold = [rng.sample(found, POSTS) for _ in range(args.runs)]
    # An update: the incident's next revision, its 150 posts those of the one before less 20, plus 20 new ones.
    updates = [posts[UPDATE_NEW:] + rng.sample([p for p in found if p not in posts], UPDATE_NEW) for posts in cold]
    templates = load_templates()
    configured = anchors(templates)

    started = time.perf_counter()
    ready = warm_encoders()
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f}; {POSTS} posts from {args.set}, {args.runs} runs")
    print(f"encoders warm-up (start-up, in the background in the alerter): {time.perf_counter() - started:.2f} s")
    medians = []
    for lang in ("en", "und"):
        name = encoder_name_for([lang]) if ready else None
        shipped = shipped_encoder(name) if name else None

        def alert(posts: Sequence[LabelledPost], lang: str = lang) -> object:
            return asyncio.run(themes_for(incident_with([p.text for p in posts], lang), templates))

        walls, cpus, update_walls, update_cpus = [], [], [], []
        for first, update in zip(cold, updates, strict=True):
            if isinstance(shipped, RememberingEncoder):
                shipped.forget()
            (wall,), (cpu,) = timed(alert, [first])
            walls.append(wall)
            cpus.append(cpu)
            (wall,), (cpu,) = timed(alert, [update])
            update_walls.append(wall)
            update_cpus.append(cpu)
        print(line(f"alerter path, posts in {lang!r} ({name or 'words only'}), cold", walls, cpus))
        print(line(f"  the next revision ({UPDATE_NEW} new posts)", update_walls, update_cpus))
        medians.append(statistics.median(walls))
    incidents = [incident_with([p.text for p in posts]) for posts in cold]
    for encoder_name in installed_encoders():
        other = load_encoder(encoder_name)
        other(["warm up"])
        each = timed(lambda i, encoder=other: incident_themes(i, configured, encoder), incidents)
        print(line(f"incident_themes, {encoder_name} encoder, cold", *each))
    words = timed(lambda i: find_themes([p.text for p in i.theme_posts], configured), incidents)
    print(line("words only (no encoder)", *words))
    print(f"load average after: {os.getloadavg()[0]:.2f}; target: median wall <= {TARGET_S:.1f} s on 2 cores")
    return 0 if max(medians) <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
