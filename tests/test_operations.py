"""Operations artefacts stay true to the code: metrics catalogue, alert rules, dashboard, manifests, images."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from crisiswatch.alerter.responses import load_templates
from crisiswatch.alerter.settings import AlerterSettings, SlackSettings
from crisiswatch.catalogue import known_series, render_markdown
from crisiswatch.classifier.settings import ClassifierSettings
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.listener.settings import MIN_TOKEN_CHARS, ListenerSettings
from crisiswatch.runtime.kafka import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.32"
OVERLAYS = ("dev", "prod-gpu")
SCRAPE_SERIES = {"up"}
CUSTOM_RESOURCES = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): ("kafka", "entityOperator"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): ("replicas", "roles", "storage"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): ("partitions", "replicas"),
    ("keda.sh/v1alpha1", "ScaledObject"): ("scaleTargetRef", "triggers"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints"),
}
SETTINGS = (ListenerSettings, ClassifierSettings, AlerterSettings, SlackSettings, KafkaSettings)


def promql_series(expression: str) -> set[str]:
    """Metric names an expression reads (identifiers followed by a selector, a range or the end of a term)."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    names = re.findall(r"\b([a-z_][a-z0-9_]*)\b\s*(?=\{|\[|\)|$|\s*[<>=!/*+-])", without_labels)
    functions_and_keywords = {
        "sum", "by", "rate", "increase", "deriv", "histogram_quantile", "absent", "and", "or", "unless", "le",
        "changes", "service", "topic", "source", "outcome", "reason", "stage", "channel", "status", "event",
        "severity", "job", "pod", "brand", "label", "model", "device", "dtype", "version",
    }  # fmt: skip
    return {name for name in names if name not in functions_and_keywords}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "crisiswatch.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    expressions += [annotation["expr"] for annotation in dashboard["annotations"]["list"]]
    expressions += [variable["query"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    return expressions


def operations_anchors() -> set[str]:
    headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / "operations.md").read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}


def built_overlay(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    output = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def containers(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from resource["spec"]["template"]["spec"]["containers"]


def validate(resource: dict[str, Any]) -> None:
    """Core kinds against the bundled Kubernetes schemas; custom resources by their required spec fields."""
    key = (resource["apiVersion"], resource["kind"])
    if key in CUSTOM_RESOURCES:
        assert resource["metadata"]["name"]
        missing = [field for field in CUSTOM_RESOURCES[key] if field not in resource["spec"]]
        assert not missing, f"{key[1]} {resource['metadata']['name']} lacks spec fields {missing}"
        return
    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_metrics_catalogue_matches_the_code() -> None:
    assert (ROOT / "docs" / "metrics.md").read_text() == render_markdown(), (
        "docs/metrics.md is stale: run `crisiswatch metrics-catalogue --write docs/metrics.md`"
    )


def test_the_series_parser_finds_names_and_ignores_functions_and_labels() -> None:
    expression = 'sum by (service) (rate(foo_total{outcome="rejected"}[5m])) / sum(bar) > 0.05 unless absent(baz)'
    assert promql_series(expression) == {"foo_total", "bar", "baz"}


def test_alert_rules_and_dashboard_query_only_metrics_the_code_exports() -> None:
    known = known_series() | SCRAPE_SERIES
    expressions = [rule["expr"] for rule in rules()] + dashboard_expressions()
    unknown = {name for expression in expressions for name in promql_series(expression)} - known
    assert not unknown, f"queries read metrics no service exports: {sorted(unknown)}"


def test_every_alert_rule_has_severity_summary_and_a_runbook_section() -> None:
    anchors = operations_anchors()
    for rule in rules():
        assert rule["alert"].startswith("Crisiswatch")
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: no section #{anchor}"


def test_alert_rules_pass_promtool_unit_tests() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    for command in (["check", "rules", "rules.yml"], ["test", "rules", "tests.yml"]):
        result = subprocess.run(
            [promtool, *command], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_panels_are_placed_and_read_the_datasource_variable() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "crisiswatch.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]


def test_base_manifests_validate_one_file_at_a_time() -> None:
    for path in sorted((DEPLOY / "k8s" / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for resource in yaml.safe_load_all(path.read_text()):
            validate(resource)


def test_the_validator_rejects_a_misspelt_field() -> None:
    deployment = next(r for r in yaml.safe_load_all((DEPLOY / "k8s" / "base" / "listener.yaml").read_text()))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_build_and_validate(overlay: str) -> None:
    resources = built_overlay(overlay)
    for resource in resources:
        validate(resource)
    kinds = {resource["kind"] for resource in resources}
    expected = {"Deployment", "Service", "ConfigMap", "Kafka", "KafkaTopic", "ScaledObject", "HorizontalPodAutoscaler"}
    expected |= {"PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "Namespace"}
    assert expected <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_non_root_read_only_with_limits(overlay: str) -> None:
    for deployment in (r for r in built_overlay(overlay) if r["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in containers(deployment):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_set_only_environment_variables_the_services_read(overlay: str) -> None:
    resources = built_overlay(overlay)
    names = {entry["name"] for r in resources if r["kind"] == "Deployment" for c in containers(r) for entry in c["env"]}
    for config_map in (
        r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("crisiswatch-config")
    ):
        names |= set(config_map["data"])
    known = {
        (settings.model_config["env_prefix"] + field).upper()
        for settings in SETTINGS
        for field in settings.model_fields
    } | {"HF_HUB_OFFLINE", "HF_HOME"}
    assert names - known == set(), f"unknown settings in the manifests: {sorted(names - known)}"


def test_gpu_overlay_gives_the_classifier_a_gpu_and_the_cuda_image() -> None:
    deployments = [r for r in built_overlay("prod-gpu") if r["kind"] == "Deployment"]
    classifier = next(r for r in deployments if r["metadata"]["name"].endswith("classifier"))
    (container,) = containers(classifier)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"].split(":")[0].endswith("classifier-gpu")
    assert {"name": "CLASSIFIER_DEVICE", "value": "cuda"} in container["env"]
    others = [r for r in deployments if r is not classifier]
    assert all("nvidia.com/gpu" not in c["resources"]["limits"] for r in others for c in containers(r))


def test_consumer_autoscaling_never_exceeds_the_partitions_it_reads() -> None:
    resources = built_overlay("prod-gpu")
    partitions = {r["metadata"]["name"]: r["spec"]["partitions"] for r in resources if r["kind"] == "KafkaTopic"}
    for scaled in (r for r in resources if r["kind"] == "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        assert scaled["spec"]["maxReplicaCount"] <= partitions[trigger["metadata"]["topic"]]


@pytest.mark.parametrize("service", ["listener", "classifier", "classifier-gpu", "alerter"])
def test_images_run_as_an_unprivileged_user_and_only_the_classifier_carries_the_model(service: str) -> None:
    dockerfile = (DEPLOY / "docker" / f"{service}.Dockerfile").read_text()
    assert re.search(r"^USER 10001$", dockerfile, flags=re.MULTILINE)
    installed = set(re.findall(r"(?:crisiswatch|\.whl\))\[([\w,-]+)\]", dockerfile))
    assert installed == {service.removesuffix("-gpu")}, "each image installs its own service's extra, and only it"
    assert ("torch" in dockerfile) == service.startswith("classifier")
    assert "calfkit" not in dockerfile


def test_the_brands_and_templates_the_manifests_ship_load_with_the_services_own_loaders() -> None:
    base = DEPLOY / "k8s" / "base"
    assert BrandCatalog.from_file(base / "brands.toml").ids()
    assert load_templates(base / "templates.toml").replies["en"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_alerters_state_is_replicated_like_the_clusters_topics(overlay: str) -> None:
    resources = built_overlay(overlay)
    (config,) = [
        r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("crisiswatch-config")
    ]
    (kafka,) = [r for r in resources if r["kind"] == "Kafka"]
    replicas = int(config["data"]["ALERTER_CHANGELOG_REPLICAS"])
    assert replicas == int(kafka["spec"]["kafka"]["config"]["default.replication.factor"])
    assert replicas >= int(kafka["spec"]["kafka"]["config"]["min.insync.replicas"])


def test_the_dev_overlays_ingest_token_is_long_enough_for_the_listener_to_serve() -> None:
    (secret,) = [r for r in built_overlay("dev") if r["kind"] == "Secret" and "ingest" in r["metadata"]["name"]]
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= MIN_TOKEN_CHARS
