"""The chart's Prometheus options: scrape annotations on every pod pointing at a port it serves
/metrics on, and the optional ServiceMonitor with a metrics Service per component."""
from __future__ import annotations

from .support import DEPLOYED, WEB, component_of, manifests, of_kind, pod_spec, validate_k8s


def container_ports(deployment: dict) -> dict[int, str]:
    (container,) = pod_spec(deployment)["containers"]
    return {port["containerPort"]: port["name"] for port in container.get("ports", [])}


def test_every_pod_is_annotated_for_scraping_on_a_port_it_serves_metrics_on():
    objects = manifests({})
    deployments = of_kind(objects, "Deployment")
    assert {component_of(d) for d in deployments} == set(DEPLOYED)
    for deployment in deployments:
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        port = int(annotations["prometheus.io/port"])
        assert port in container_ports(deployment)
        # services on their health port, the web components on METRICS_PORT (not the public one)
        assert port == (9100 if component_of(deployment) in WEB else 8000)
    (config,) = [cm for cm in of_kind(objects, "ConfigMap") if "METRICS_PORT" in cm.get("data", {})]
    assert config["data"]["METRICS_PORT"] == "9100"


def test_annotations_can_be_turned_off():
    for deployment in of_kind(manifests({"metrics": {"annotations": False}}), "Deployment"):
        assert not any(k.startswith("prometheus.io/") for k in deployment["spec"]["template"]["metadata"]["annotations"])


def test_no_service_monitor_by_default():
    assert not of_kind(manifests({}), "ServiceMonitor")


def test_the_service_monitor_selects_a_metrics_service_of_every_component():
    values = {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
              "auth": {"enabled": False}}
    objects = manifests(values)
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [s for s in of_kind(objects, "Service")
                if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    assert {component_of(s) for s in selected} == set(DEPLOYED) - {"auth"}
    deployments = {component_of(d): d for d in of_kind(objects, "Deployment")}
    for service in selected:
        (port,) = service["spec"]["ports"]
        assert port["name"] == monitor["spec"]["endpoints"][0]["port"]
        assert port["targetPort"] in container_ports(deployments[component_of(service)]).values()
        validate_k8s(service)
