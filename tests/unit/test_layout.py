"""The layout holds: a light ``crisiswatch`` command, layers the import linter sees whole, contracts at the edge.

Lazy imports are checked in a fresh interpreter (the test process has long
imported everything). The import contract is checked on the graph the
linter builds, services included. Rejections carry their code from where
they are raised, and the ingest API publishes the input model's schema.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
from importlinter.contracts.layers import LayersContract
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from crisiswatch import cli
from crisiswatch.contracts.schemas import MAX_ID_CHARS, DeadLetter
from crisiswatch.contracts.topics import Topics
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, BrandCatalog
from crisiswatch.ingest.records import MentionInput
from crisiswatch.listener.ingest_http import openapi
from crisiswatch.listener.service import Listener, Outcome
from crisiswatch.runtime.kafka import OutgoingRecord
from tools.import_contract import build_graph

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "faust", "scipy", "matplotlib", "aiohttp", "slack_sdk", "kafka", "fasttext")
TOP_LEVEL = (
    "broker",
    "demo",
    "backtest",
    "replay",
    "eval-detector",
    "eval-language",
    "metrics-catalogue",
    "themes",
    "eval-themes",
)
SUB_APPS = {
    "listener": ("replay", "scenario", "serve"),
    "alerter": ("run", "seed"),
    "classifier": ("run",),
    "model": ("eval", "train", "cv", "train-ngram"),
}
CATALOG = BrandCatalog.from_file(DEFAULT_BRANDS_FILE)


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_importing_the_command_loads_no_heavy_library() -> None:
    done = _run_python(f"""
        import json, sys
        import crisiswatch.cli
        print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))
    """)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_help_lists_every_command_and_still_loads_no_heavy_library() -> None:
    done = _run_python(f"""
        import json, sys
        from crisiswatch.cli import main
        sys.argv = ["crisiswatch", "--help"]
        try:
            main()
        except SystemExit:
            pass
        print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)), file=sys.stderr)
    """)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    for command in (*TOP_LEVEL, *SUB_APPS, "classify"):
        assert f" {command} " in done.stdout, f"{command} missing from crisiswatch --help"


@pytest.mark.parametrize(("sub_app", "commands"), SUB_APPS.items())
def test_each_sub_app_shows_its_own_commands(sub_app: str, commands: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli.app, [sub_app, "--help"])
    assert result.exit_code == 0, result.output
    assert f" {sub_app} [OPTIONS] COMMAND" in result.output
    for command in commands:
        assert f" {command} " in result.output


@pytest.mark.parametrize("deferred", cli.DEFERRED, ids=lambda d: d.name)
def test_a_deferred_command_is_listed_with_the_help_it_has_once_loaded(deferred: cli.Deferred) -> None:
    assert deferred.available()
    loaded = deferred.load()
    assert loaded.help == deferred.help
    assert loaded.short_help is None, "the listing shows help, so a short help would differ from the stand-in's"


def test_a_command_whose_extra_is_missing_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = cli.Deferred("ghost", "Never loads.", lambda: pytest.fail("loaded"), ("no_such_library_here",), "ghost")
    monkeypatch.setattr(cli, "DEFERRED", (*cli.DEFERRED, ghost))
    listed = typer.main.get_group(cli.app).commands.get("ghost")
    assert listed is not None
    assert listed.help == "Unavailable: install the ghost extra (pip install 'crisiswatch\\[ghost]')."
    refused = CliRunner().invoke(cli.app, ["ghost", "run", "--anything"])
    assert refused.exit_code == 2
    flat = "".join(refused.output.replace("│", " ").split())
    assert "no_such_library_here" in flat
    assert "pipinstall'crisiswatch[ghost]'" in flat, "the brackets are escaped from rich markup"


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return contract["layers"]


def _check_layers(graph: Any) -> bool:
    contract = LayersContract("layers", {"root_packages": ["crisiswatch"]}, {"layers": _layers()})
    return contract.check(graph, verbose=False).kept


def test_the_import_graph_includes_the_services_and_keeps_the_layers() -> None:
    graph = build_graph(["crisiswatch"])
    assert {"crisiswatch.listener.service", "crisiswatch.classifier.main", "crisiswatch.alerter.app"} <= graph.modules
    assert "crisiswatch.modeling.cli" not in graph.find_downstream_modules("crisiswatch.classifier")
    assert _check_layers(graph)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("crisiswatch.listener.service", "crisiswatch.alerter.settings"),
        ("crisiswatch.classifier.main", "crisiswatch.modeling.cli"),
        ("crisiswatch.alerter.app", "crisiswatch.analysis.backtest"),
        ("crisiswatch.runtime.kafka", "crisiswatch.ingest.records"),
        ("crisiswatch.contracts.schemas", "crisiswatch.runtime.logs"),
    ],
)
def test_the_contract_refuses_a_service_importing_a_neighbour_or_a_layer_importing_upwards(
    importer: str, imported: str
) -> None:
    graph = build_graph(["crisiswatch"])
    graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    assert not _check_layers(graph)


class _Producer:
    """Keeps what the listener sends; every record is acknowledged."""

    def __init__(self) -> None:
        self.records: list[OutgoingRecord] = []

    def send(self, record: OutgoingRecord) -> None:
        self.records.append(record)

    def confirm(self, stopping: Any = None, flush_timeout_s: float | None = None) -> bool:
        return True


def _rejected(source: str, code: str) -> float:
    return REGISTRY.get_sample_value("crisiswatch_listener_rejected_total", {"source": source, "reason": code}) or 0.0


def test_an_overlong_id_is_dead_lettered_with_its_reason_and_code() -> None:
    producer = _Producer()
    listener = Listener(producer, Topics(), CATALOG)  # type: ignore[arg-type]
    before = _rejected("layout-test", "too_large")
    now = datetime.now(UTC).isoformat()
    record = {"id": "x" * (MAX_ID_CHARS + 1), "text": "Acme Air lost my bag", "created_at": now}
    outcome, rejection = listener.accept(record, "layout-test")
    assert outcome is Outcome.REJECTED and rejection is not None
    (sent,) = producer.records
    letter = DeadLetter.model_validate_json(sent.value)
    assert sent.topic == Topics().dlq
    assert letter.reason == f"id is {MAX_ID_CHARS + 1} characters long; the limit is {MAX_ID_CHARS}"
    assert letter.code == rejection.code == "too_large"
    assert _rejected("layout-test", "too_large") == before + 1
    assert listener.accept({**record, "id": "x" * MAX_ID_CHARS}, "layout-test")[0] is Outcome.ACCEPTED


def test_the_ingest_api_publishes_the_input_models_schema_with_the_configured_brands() -> None:
    document = openapi(CATALOG.ids())
    schema = document["components"]["schemas"]["Mention"]
    generated = MentionInput.model_json_schema()
    assert {k: v for k, v in schema["properties"].items() if k != "brand"} == {
        k: v for k, v in generated["properties"].items() if k != "brand"
    }
    assert schema["properties"]["brand"]["anyOf"][0]["enum"] == CATALOG.ids()
    valid = {"id": 7, "text": "Voltcell is down", "created_at": int(time.time()), "brand": "voltcell", "likes": 3}
    jsonschema.validate(valid, schema)
    assert Listener(_Producer(), Topics(), CATALOG).accept(valid, "layout-test")[0] is Outcome.ACCEPTED  # type: ignore[arg-type]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**valid, "id": "x" * (MAX_ID_CHARS + 1)}, schema)


def test_the_readmes_layer_table_is_the_import_contract() -> None:
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layers = [sorted(name.strip() for name in layer.split("|")) for layer in contract["layers"]]
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| layer | packages |") :].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| ")]
    documented = [sorted(re.findall(r"`(crisiswatch[\w.]*)`", row.split("|")[2])) for row in rows]
    assert [row.split("|")[1].strip() for row in rows] == [str(n) for n in range(1, len(rows) + 1)]
    assert documented == layers, "README.md's layer table and [tool.importlinter] in pyproject.toml disagree"


def test_no_module_imports_itself_back_through_others() -> None:
    graph = build_graph(["crisiswatch"])
    modules = sorted(graph.modules)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in modules:
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles (late imports inside functions count too): " + "; ".join(
        " -> ".join(cycle) for cycle in cycles[:5]
    )
