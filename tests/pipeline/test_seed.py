"""Starting brands warm: `crisiswatch alerter seed` loads learnt state that the real alerter restores on start."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crisiswatch.ingest.scenario import BrandTraffic, Scenario, generate

from ..conftest import Pipeline, metric_value, produce, scored_traffic

pytestmark = pytest.mark.pipeline
CLI = str(Path(sys.executable).parent / "crisiswatch")


def _seed(pipeline: Pipeline, history: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "crisiswatch"),
            "alerter",
            "seed",
            history,
            "--label-field",
            "truth.sentiment",
        ],
        env=pipeline.env,
        cwd=pipeline.workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_seeded_brand_starts_warm_and_seeding_refuses_while_the_alerter_runs(pipeline_factory) -> None:
    pipeline: Pipeline = pipeline_factory()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    history = Scenario(
        name="history",
        start=now - timedelta(days=2, hours=1),
        duration=timedelta(days=2),
        brands=(
            BrandTraffic("acme-air", "Acme Air", "AcmeAir", mentions_per_hour=30),
            BrandTraffic("nimbus-bank", "Nimbus Bank", "NimbusBank", mentions_per_hour=20),
        ),
        seed=5,
    )
    history_file = pipeline.workdir / "history.jsonl"
    history_file.write_text("".join(json.dumps(record) + "\n" for record in generate(history)))

    seeded = _seed(pipeline, str(history_file))
    assert seeded.returncode == 0, seeded.stderr
    assert "acme-air: 2.0 days of history, warm" in seeded.stdout
    assert "nimbus-bank: 2.0 days of history, warm" in seeded.stdout

    pipeline.start("alerter", "run")
    start = now - timedelta(minutes=50)
    brands = {"acme-air": 0, "nimbus-bank": 0, "voltcell": 1}
    for brand in brands:
        produce(pipeline, pipeline.topics.scored, scored_traffic(brand, start, 10, 2, 5, brand))
    for brand in brands:
        pipeline.wait_for_metric("alerter", "crisiswatch_alerter_buckets_closed_total", f'brand="{brand}"', 1)
    metrics = pipeline.metrics("alerter")
    learning = {
        brand: metric_value(metrics, "crisiswatch_alerter_brand_learning", f'brand="{brand}"') for brand in brands
    }
    assert learning == brands, "seeded brands start warm; only the unseeded one is learning"

    refused = _seed(pipeline, str(history_file))
    assert refused.returncode == 1
    assert "stop it, seed, restart" in refused.stderr
