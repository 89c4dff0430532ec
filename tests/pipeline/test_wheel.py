"""What users install is what is tested: the built wheel, installed into a fresh environment away from the source.

The editable install that development and the other tests use reads the
source tree, so a package or data file left out of the wheel goes unseen
there while every image built from the wheel fails at start. Here the wheel
is built from the files a clone would hold, installed with ``--no-deps`` into
a new virtual environment that borrows the development environment's
libraries (the same versions ``make setup`` resolved from pyproject.toml,
checked against the wheel's own requirements below), and run from a folder
outside the tree: every module imports, every tracked file ships, the
command answers, and the three services pass mentions through the real broker.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.broker import EmbeddedBroker, free_port
from crisiswatch.runtime.kafka import KafkaSettings, ensure_topics

from ..conftest import Pipeline

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("listener", "classifier", "alerter")
EXTRAS = ("listener", "classifier", "alerter", "analysis", "local")


@dataclass(frozen=True)
class Installed:
    """A built wheel and a fresh environment holding it, with a working folder outside the source tree."""

    wheel: Path
    python: Path
    command: Path
    workdir: Path

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (a script of the environment, or its python) in the working folder, outside the tree."""
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=self.workdir, env=env)

    def python_code(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run ``code`` under the environment's interpreter."""
        return self.run(str(self.python), "-c", textwrap.dedent(code))


def _tracked_files() -> list[str]:
    """The files a clone with the current changes would hold: tracked plus untracked-but-not-ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def _wheel_path(source: str) -> str | None:
    """Where a source file lands in the wheel, or None for a file outside the installed packages."""
    if source.startswith("crisiswatch/"):
        return source
    parts = source.split("/")
    if parts[0] == "services" and len(parts) > 2 and parts[1] in SERVICES:
        return "/".join(["crisiswatch", *parts[1:]])
    return None


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in _tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", str(source), "-w", dist],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("crisiswatch-*.whl")
    environment = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True, timeout=300)
    python = environment / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A .pth line adds the development libraries after the environment's own site-packages, without running
    # the .pth files there (among them the editable install's finder, which would point back at the tree).
    (Path(purelib) / "crisiswatch_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    workdir = base / "work"
    workdir.mkdir()
    return Installed(wheel, python, environment / "bin" / "crisiswatch", workdir)


def test_the_wheel_carries_every_source_and_data_file(installed: Installed) -> None:
    shipped = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {path for name in _tracked_files() if (path := _wheel_path(name)) is not None}
    assert any(path.startswith("crisiswatch/themes/") for path in expected), "the check must see every package"
    assert any(path.endswith(("brands.toml", "templates.toml", ".safetensors", ".npz")) for path in expected)
    missing = sorted(expected - shipped)
    assert not missing, f"left out of the wheel: {missing}"


def test_every_module_imports_from_the_installed_wheel_alone(installed: Installed) -> None:
    done = installed.python_code("""
        import importlib, json, pkgutil, sys
        import crisiswatch
        failures = {}
        names = [info.name for info in pkgutil.walk_packages(crisiswatch.__path__, "crisiswatch.")]
        for name in names:
            if name.endswith(".__main__"):
                continue
            try:
                importlib.import_module(name)
            except Exception as error:
                failures[name] = f"{type(error).__name__}: {error}"
        print(json.dumps({"file": crisiswatch.__file__, "count": len(names), "failures": failures}))
    """)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["file"].startswith(str(installed.python.parents[1])), "imported from somewhere else than the wheel"
    assert report["count"] > 50
    assert report["failures"] == {}


def test_the_wheel_declares_what_its_extras_need(installed: Installed) -> None:
    done = installed.python_code(f"""
        import json
        from importlib.metadata import PackageNotFoundError, requires, version
        from packaging.requirements import Requirement
        unmet = []
        for line in requires("crisiswatch"):
            requirement = Requirement(line)
            wanted = [extra for extra in [""] + {list(EXTRAS)!r}
                      if requirement.marker is None or requirement.marker.evaluate({{"extra": extra}})]
            if not wanted or requirement.name == "crisiswatch":
                continue
            try:
                found = version(requirement.name)
            except PackageNotFoundError:
                unmet.append(f"{{line}}: not installed")
                continue
            if not requirement.specifier.contains(found, prereleases=True):
                unmet.append(f"{{line}}: found {{found}}")
        print(json.dumps(unmet))
    """)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    "args",
    [(), ("listener", "serve"), ("classifier", "run"), ("alerter", "run"), ("alerter", "seed"), ("model", "eval")],
    ids=lambda args: " ".join(args) or "crisiswatch",
)
def test_the_installed_command_answers_help(installed: Installed, args: tuple[str, ...]) -> None:
    done = installed.run(str(installed.command), *args, "--help", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Usage:" in done.stdout


def test_the_three_services_pass_mentions_through_from_the_wheel(
    installed: Installed, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = "wheel."
    topics = Topics(prefix)
    ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), topics.all(), partitions=2)
    ports = {name: free_port() for name in SERVICES}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLACK_", "KAFKA_", "ALERTER_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": prefix,
            "KAFKA_TOPIC_PARTITIONS": "2",
            **{f"{name.upper()}_METRICS_PORT": str(port) for name, port in ports.items()},
            "ALERTER_DATA_DIR": str(tmp_path / "alerter-state"),
            "ALERTER_ALERTS_FILE": str(tmp_path / "alerts.jsonl"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
    )
    pipeline = Pipeline(broker, installed.workdir, topics, env, ports, python=str(installed.python))
    now = datetime.now(UTC)
    mentions = [
        {"id": "wheel-en", "text": "Acme Air lost my bag again", "created_at": now - timedelta(minutes=3)},
        {"id": "wheel-he", "text": "גליל מובייל שוב נפל לי האינטרנט", "created_at": now - timedelta(minutes=2)},
        {"id": "wheel-calm", "text": "Nimbus Bank app works fine", "created_at": now - timedelta(minutes=1)},
    ]
    feed = tmp_path / "mentions.jsonl"
    feed.write_text("".join(json.dumps({**m, "created_at": m["created_at"].isoformat()}) + "\n" for m in mentions))
    try:
        pipeline.start("classifier", "run")
        pipeline.start("alerter", "run")
        pipeline.run_listener("replay", str(feed))
        pipeline.wait_for_metric("alerter", "crisiswatch_alerter_mentions_total", "", len(mentions))
        scored = pipeline.wait_for_metric("classifier", "crisiswatch_classifier_mentions_total", "", len(mentions))
        assert scored == len(mentions)
    finally:
        pipeline.stop()
    for name, process in pipeline.processes.items():
        assert process.returncode == 0, f"{name} exited with {process.returncode}"
