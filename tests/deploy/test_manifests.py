"""deploy/compose.yaml and deploy/kubernetes/ parse and agree with each other, the Dockerfile, the
policies and the gateway's command line (no Docker or cluster needed)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy import dashboard
from tests.deploy.dashboard import DEPLOY
from tests.factories import POLICIES, REPO

COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
IMAGE = "switchyard:latest"
PORT = 8080
SERVE_OPTIONS = {
    "--policies",
    "--host",
    "--port",
    "--demo",
    "--log-level",
    "--audit-log",
    "--reload-seconds",
    "--workers",
    "--drain-seconds",
}
KUBERNETES_VERSION = "1.30.0"  # preStop `sleep` is GA from 1.30
SHUTDOWN_MARGIN_SECONDS = 5  # after the drain: cutting streams, the lifespan's shutdown, the exit


def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = [KUBERNETES / resource for resource in kustomization["resources"]]
    return [document for path in files for document in yaml.safe_load_all(path.read_text())]


def kubernetes() -> dict[str, dict[str, Any]]:
    """kind -> object, from the resources of kustomization.yaml."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    objects = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((KUBERNETES / resource).read_text()):
            objects[document["kind"]] = document
    return objects


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def check_serve_command(args: list[str]) -> None:
    assert args[:2] == ["gateway", "serve"]
    assert {a for a in args if a.startswith("--")} <= SERVE_OPTIONS
    assert option(args, "--host") == "0.0.0.0"
    assert option(args, "--port") == str(PORT)
    assert option(args, "--policies") == "/etc/switchyard/policies"


def test_compose_runs_the_four_services() -> None:
    assert set(compose()) == {"gateway", "redis", "prometheus", "grafana"}


def test_compose_builds_the_gateway_from_the_repository_dockerfile() -> None:
    gateway = compose()["gateway"]
    context = (COMPOSE.parent / gateway["build"]["context"]).resolve()
    assert context == REPO and (context / gateway["build"]["dockerfile"]).is_file()
    assert gateway["image"] == IMAGE
    check_serve_command(gateway["command"])
    assert gateway["ports"] == [f"{PORT}:{PORT}"]
    assert "../policies:/etc/switchyard/policies:ro" in gateway["volumes"]
    assert gateway["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert gateway["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_every_compose_bind_mount_exists() -> None:
    for name, service in compose().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {volume}"


def test_prometheus_scrapes_the_compose_gateway() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": [f"gateway:{PORT}"]}]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "./prometheus:/etc/prometheus:ro" in compose()["prometheus"]["volumes"]


def test_the_dockerfile_exposes_the_port_and_checks_healthz() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"EXPOSE {PORT}" in dockerfile
    assert f"http://127.0.0.1:{PORT}/healthz" in dockerfile


def test_the_deployment_runs_the_image_with_probes_and_scrape_annotations() -> None:
    deployment = kubernetes()["Deployment"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE
    check_serve_command(container["args"])
    assert container["ports"] == [{"name": "http", "containerPort": PORT}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_the_policies_volume_is_the_generated_configmap_of_every_policy_file() -> None:
    container = kubernetes()["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in container["volumes"]}
    (mount,) = [m for m in container["containers"][0]["volumeMounts"] if m["name"] == "policies"]
    assert mount["mountPath"] == option(container["containers"][0]["args"], "--policies")
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert volumes["policies"]["configMap"]["name"] == generator["name"]
    files = {(KUBERNETES / f).resolve() for f in generator["files"]}
    assert files == {p.resolve() for p in POLICIES.glob("*.yaml")}
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True


def test_the_service_hpa_and_servicemonitor_point_at_the_deployment() -> None:
    objects = kubernetes()
    deployment, service = objects["Deployment"], objects["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port == {"name": "http", "port": PORT, "targetPort": "http"}
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    monitor = objects["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]


def test_the_prometheusrule_holds_the_same_rules_as_the_rules_file() -> None:
    rule = kubernetes()["PrometheusRule"]
    shipped = yaml.safe_load((DEPLOY / "prometheus/rules/switchyard.yml").read_text())
    assert rule["spec"] == shipped


def test_every_kubernetes_file_is_listed_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present


def test_the_readme_names_every_alert_and_dashboard_row() -> None:
    readme = (DEPLOY / "README.md").read_text()
    shipped = yaml.safe_load((DEPLOY / "prometheus/rules/switchyard.yml").read_text())
    alerts = [r["alert"] for g in shipped["groups"] for r in g["rules"] if "alert" in r]
    rows = [panel["title"] for panel in dashboard.load()["panels"] if panel["type"] == "row"]
    missing = [name for name in alerts + rows if name not in readme]
    assert missing == []


@pytest.mark.parametrize("document", [d for d in documents() if "monitoring.coreos.com" not in d["apiVersion"]],
                         ids=lambda d: d["kind"])  # fmt: skip
def test_the_manifests_are_valid_against_the_kubernetes_schemas(document: dict[str, Any]) -> None:
    """Strict: an unknown or misplaced field fails (the prometheus-operator CRDs have no schema here)."""
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_schema_violation_is_caught() -> None:
    deployment = kubernetes()["Deployment"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_pod_drains_within_its_grace_period() -> None:
    """preStop sleep + --drain-seconds + the margin to stop fit in terminationGracePeriodSeconds."""
    pod = kubernetes()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(option(container["args"], "--drain-seconds"))
    assert sleep + drain + SHUTDOWN_MARGIN_SECONDS <= pod["terminationGracePeriodSeconds"]
    from gateway.settings import Settings

    assert Settings().drain_seconds == drain, "the default --drain-seconds is the manifest's"
    assert container["readinessProbe"]["failureThreshold"] == 1, "one 503 takes a draining pod out"


def test_the_pod_runs_locked_down() -> None:
    pod = kubernetes()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"} and "memory" in resources["limits"]


def test_the_disruption_budget_and_autoscaler_keep_a_replica_serving() -> None:
    objects = kubernetes()
    budget, hpa = objects["PodDisruptionBudget"], objects["HorizontalPodAutoscaler"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1 and hpa["spec"]["minReplicas"] >= 2
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "gateway_in_flight_requests"
    readme = (DEPLOY / "README.md").read_text()
    assert "prometheus-adapter" in readme and "gateway_in_flight_requests" in readme
