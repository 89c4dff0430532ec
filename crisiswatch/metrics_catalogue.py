"""The metrics catalogue: every Prometheus series the services export, read from the metric objects themselves.

``docs/metrics.md`` is rendered from here (``crisiswatch metrics-catalogue``)
and a test fails when the file and the code disagree, so the SRE's reference
cannot drift. Importing the metrics modules needs neither torch nor Kafka.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase

SOURCES = {
    "all": "crisiswatch.runtime.metrics",
    "listener": "crisiswatch.listener.metrics",
    "classifier": "crisiswatch.classifier.metrics",
    "alerter": "crisiswatch.alerter.metrics",
}
EXPOSED_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
PROCESS_METRICS = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
    "python_gc_collections_total",
    "python_info",
)


@dataclass(frozen=True)
class MetricEntry:
    """One metric family as Prometheus exposes it."""

    service: str
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str

    @property
    def exposed_name(self) -> str:
        """The name a reader greps for: ``x_total`` for a counter, ``x_info`` for info, else the family name."""
        return self.name + {"counter": "_total", "info": "_info"}.get(self.kind, "")

    @property
    def series_names(self) -> tuple[str, ...]:
        """The sample names a query can use (``_total``, ``_bucket``... as the type implies)."""
        suffixes = EXPOSED_SUFFIXES.get(self.kind, ())
        return (self.name, *(self.name + suffix for suffix in suffixes)) if suffixes else (self.name,)


def metric_entries() -> list[MetricEntry]:
    """Every metric object defined at module level in the services' metrics modules, in a stable order."""
    entries: list[MetricEntry] = []
    for service, module_name in SOURCES.items():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                (family,) = value.describe()
                labels = tuple(value._labelnames)
                entries.append(MetricEntry(service, family.name, family.type, labels, family.documentation))
    return sorted(entries, key=lambda entry: (list(SOURCES).index(entry.service), entry.name))


def known_series() -> set[str]:
    """Every sample name a dashboard or rule may query, process metrics included."""
    return {name for entry in metric_entries() for name in entry.series_names} | set(PROCESS_METRICS)


def render_markdown() -> str:
    """``docs/metrics.md``."""
    lines = [
        "# Metrics catalogue",
        "",
        "Generated from the code by `crisiswatch metrics-catalogue --write docs/metrics.md`;",
        "`tests/unit/test_operations.py` fails when this file and the code disagree.",
        "Each service serves these on `/metrics` (ports 9101 listener, 9102 classifier, 9103 alerter),",
        "together with prometheus-client's process metrics (`process_resident_memory_bytes`,",
        "`process_cpu_seconds_total`, `process_open_fds`...). Per-brand series on the alerter are capped",
        "by `ALERTER_METRIC_BRANDS_MAX`; brands beyond it share the `_other` label.",
        "",
    ]
    for service in SOURCES:
        title = "Every service" if service == "all" else service.capitalize()
        lines += [f"## {title}", "", "| metric | type | labels | meaning |", "|---|---|---|---|"]
        for entry in metric_entries():
            if entry.service == service:
                labels = ", ".join(f"`{label}`" for label in entry.labels) or "—"
                lines.append(f"| `{entry.exposed_name}` | {entry.kind} | {labels} | {entry.help} |")
        lines.append("")
    return "\n".join(lines)
