"""The Helm chart, rendered offline through helm-python-sdk: it lints, every
manifest is a valid Kubernetes object, and the things an operator relies on
(probes, security, routing, secrets, migrations) hold for the defaults, the
production values and every toggle."""

from __future__ import annotations

import base64
import json
import re

import pytest

from .support import (
    AUTH_BASE_MIB,
    CHART,
    DATABASE_SERVICES,
    DEPLOYED,
    HEALTH_PATHS,
    KUBE_VERSION,
    SECRET_ENV,
    SERVICES,
    by_name,
    component_of,
    deep_merge,
    load_values,
    manifests,
    of_kind,
    pod_spec,
    render,
    validate_k8s,
)

PRODUCTION = load_values("values-production.yaml")

# A production install as the README describes it: values-production.yaml plus
# the operator's own image and host.
PRODUCTION_INSTALL = deep_merge(
    PRODUCTION,
    {"image": {"repository": "registry.example.com/ticketing", "tag": "1.2.3"}, "ingress": {"host": "tickets.example.com"},
     "rabbitmq": {"external": {"addresses": "amqps://rabbit-0.example.com:5671;amqps://rabbit-1.example.com:5671",
                               "managementUrl": "https://rabbit.example.com:15671"}}},
)

# The components with a broker user of their own (the frontend never talks to the broker).
BROKER_COMPONENTS = tuple(c for c in DEPLOYED if c != "frontend")
EXTERNAL_BROKER = {"inCluster": {"enabled": False},
                   "external": {"addresses": "amqp://mq-0:5672;amqp://mq-1:5672", "vhost": "shop",
                                "managementUrl": "http://mq:15672", "adminExistingSecret": "mq-admin"}}

EXTERNAL_URLS = {
    svc: f"postgresql+psycopg://u:p@db.example.com:5432/ticketing_{svc}" for svc in DATABASE_SERVICES
}

# name -> values: the defaults, the production file, and each toggle flipped.
SCENARIOS: dict[str, dict] = {
    "defaults": {},
    "production": PRODUCTION_INSTALL,
    **{f"{c}-disabled": {c: {"enabled": False}} for c in DEPLOYED},
    "web-only": {c: {"enabled": False} for c in SERVICES},
    "services-only": {"gateway": {"enabled": False}, "frontend": {"enabled": False}},
    "ingress-disabled": {"ingress": {"enabled": False}},
    "ingress-tls": {"ingress": {"host": "t.example.com", "tls": [{"secretName": "t-tls", "hosts": ["t.example.com"]}]}},
    "autoscaling": {"gateway": {"autoscaling": {"enabled": True}}, "frontend": {"autoscaling": {"enabled": True}}},
    "pdb-disabled": {"gateway": {"podDisruptionBudget": {"enabled": False}}, "frontend": {"podDisruptionBudget": {"enabled": False}}},
    "pdb-min-available": {"gateway": {"podDisruptionBudget": {"minAvailable": 1}}},
    "migrations-disabled": {"migrations": {"enabled": False}},
    "no-service-account": {"serviceAccount": {"create": False}},
    "no-persistence": {
        "rabbitmq": {"inCluster": {"persistence": {"enabled": False}}},
        "postgresql": {"inCluster": {"persistence": {"enabled": False}}},
    },
    "topology-spread": {"topologySpread": {"enabled": True}},
    "anti-affinity-required": {"podAntiAffinity": "required", "config": {"queueType": "quorum"}},
    "services-pdb-disabled": {s: {"podDisruptionBudget": {"enabled": False}} for s in SERVICES},
    # one pre-made broker user for every component
    "rabbitmq-external-uri": {"rabbitmq": {"perComponentUsers": {"enabled": False}, "inCluster": {"enabled": False},
                                           "external": {"uri": "amqp://u:p@mq:5672/"}}},
    "rabbitmq-external-secret": {"rabbitmq": {"perComponentUsers": {"enabled": False}, "inCluster": {"enabled": False},
                                              "external": {"existingSecret": "mq"}}},
    "broker-users-disabled": {"rabbitmq": {"perComponentUsers": {"enabled": False}}},
    # each component its own user on an external broker
    "rabbitmq-external-users": {"rabbitmq": EXTERNAL_BROKER},
    "rabbitmq-external-users-secret": {"rabbitmq": deep_merge(EXTERNAL_BROKER, {"perComponentUsers": {
        "existingSecret": "mq-users", "usernamePrefix": "shop-"}})},
    "rabbitmq-external-users-no-job": {"rabbitmq": deep_merge(EXTERNAL_BROKER, {
        "perComponentUsers": {"existingSecret": "mq-users", "job": {"enabled": False}},
        "external": {"managementUrl": "", "adminExistingSecret": ""}})},
    "broker-users-from-values": {"rabbitmq": {"perComponentUsers": {"passwords": {c: f"{c}-pw-0123456789abcdef"
                                                                                  for c in ("auth", "tickets", "orders",
                                                                                            "expiration", "payments",
                                                                                            "confirmation", "gateway")}}}},
    "postgresql-external-urls": {"postgresql": {"inCluster": {"enabled": False}, "external": {"urls": EXTERNAL_URLS}}},
    "postgresql-external-secret": {"postgresql": {"inCluster": {"enabled": False}, "external": {"existingSecret": "dbs"}}},
    "secrets-from-values": {
        "secrets": {
            "jwtPrivateKey": {"value": "-----BEGIN PRIVATE KEY-----(from values)"},
            "jwtPublicKey": {"value": "-----BEGIN PUBLIC KEY-----(from values)"},
            "secretKey": {"value": "secret-from-values-0123456789abcdef"},
            "stripeKey": {"value": "sk_test_from_values"},
            "sendgridApiKey": {"value": "SG.from-values"},
        }
    },
    "secrets-existing": {
        "secrets": {
            "jwtPrivateKey": {"existingSecret": "jwt"},
            "jwtPublicKey": {"existingSecret": "jwt"},
            "secretKey": {"existingSecret": "web"},
            "stripeKey": {"existingSecret": "stripe-secret"},
            "sendgridApiKey": {"existingSecret": "sendgrid-secret"},
        }
    },
    "secrets-not-generated": {"secrets": {"generate": False}},
    "production-environment": {"config": {"environment": "production", "extra": {"LOG_LEVEL": "info"}}},
    "component-extras": {
        "orders": {"env": {"FEATURE_X": "on"}, "nodeSelector": {"pool": "apps"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
        "imagePullSecrets": [{"name": "regcred"}],
    },
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS), ids=sorted(SCENARIOS))
def scenario(request):
    values = SCENARIOS[request.param]
    return request.param, values, manifests(values)


def existing_infrastructure_secrets(merged: dict) -> set[str]:
    """The broker and database Secrets the values say the operator created."""
    mq = merged["rabbitmq"]
    return {mq["external"]["existingSecret"], mq["external"]["adminExistingSecret"],
            mq["perComponentUsers"]["existingSecret"], merged["postgresql"]["external"]["existingSecret"]} - {""}


def enabled(values: dict, component: str) -> bool:
    return values.get(component, {}).get("enabled", True)


def container(obj: dict) -> dict:
    (only,) = pod_spec(obj)["containers"]
    return only


def env_list(c: dict) -> list[dict]:
    return c.get("env") or []


# ------------------------------------------------------------------ lint

@pytest.mark.parametrize("values_file", ["values.yaml", "values-production.yaml"])
def test_lints_in_strict_mode(values_file):
    import helm_python

    values = PRODUCTION_INSTALL if values_file == "values-production.yaml" else None
    report = helm_python.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"], report
    assert not problems, problems


# ------------------------------------------------------- every scenario

def test_every_manifest_is_a_valid_kubernetes_object(scenario):
    _, _, objects = scenario
    assert objects
    for obj in objects:
        try:
            validate_k8s(obj)
        except Exception as exc:  # name the object in the failure
            raise AssertionError(f"{obj['kind']}/{obj['metadata'].get('name')}: {getattr(exc, 'message', exc)}") from exc


def test_one_deployment_per_enabled_component(scenario):
    _, values, objects = scenario
    deployed = {component_of(d) for d in of_kind(objects, "Deployment")}
    assert deployed == {c for c in DEPLOYED if enabled(values, c)}
    names = [o["metadata"]["name"] for o in objects]
    assert len(names) == len(set((o["kind"], o["metadata"]["name"]) for o in objects)), "duplicate objects"


def test_deployments_run_the_component_they_are_named_after(scenario, components):
    _, _, objects = scenario
    for d in of_kind(objects, "Deployment"):
        c = container(d)
        assert c["args"] == ["run", component_of(d)]
        assert component_of(d) in components, f"`ticketing run {component_of(d)}` is not a CLI component"
        assert "command" not in c, "the image's ENTRYPOINT (ticketing) must stay"


def test_deployments_have_probes_on_the_health_endpoints(scenario):
    _, _, objects = scenario
    for d in of_kind(objects, "Deployment"):
        name = component_of(d)
        live, ready = HEALTH_PATHS[name]
        c = container(d)
        for probe, path in (("livenessProbe", live), ("readinessProbe", ready), ("startupProbe", live)):
            assert c[probe]["httpGet"] == {"path": path, "port": 8000}, (name, probe)
        if name in SERVICES:
            # liveness must not depend on the broker or the database; readiness does
            assert (live, ready) == ("/healthz", "/readyz")
        # the web components serve /metrics on a port of their own, away from the public one
        assert {p["containerPort"] for p in c["ports"]} == ({8000} if name in SERVICES else {8000, 9100})


def test_deployments_have_resources(scenario):
    _, _, objects = scenario
    for d in of_kind(objects, "Deployment"):
        resources = container(d)["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], d["metadata"]["name"]
        assert resources["limits"]["memory"], d["metadata"]["name"]


def test_pods_run_as_non_root_with_a_read_only_root(scenario):
    _, _, objects = scenario
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        spec = pod_spec(workload)
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True
        assert pod_sc["runAsUser"] != 0
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert not sc.get("privileged")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, "a read-only root needs a writable /tmp"
            volumes = {v["name"]: v for v in spec["volumes"]}
            for mount_name in mounts.values():
                assert "emptyDir" in volumes[mount_name], mount_name


def test_the_mail_outbox_is_writable_where_emails_are_written(scenario):
    _, _, objects = scenario
    config = next(iter(by_name(objects, "ConfigMap").values()))
    outbox = [cm for cm in of_kind(objects, "ConfigMap") if "MAIL_OUTBOX_DIR" in cm.get("data", {})]
    assert outbox, config
    path = outbox[0]["data"]["MAIL_OUTBOX_DIR"]
    for d in of_kind(objects, "Deployment"):
        if component_of(d) == "confirmation":
            mounts = {m["mountPath"] for m in container(d)["volumeMounts"]}
            assert path in mounts


def test_in_chart_infrastructure_runs_as_non_root(scenario):
    _, _, objects = scenario
    for sts in of_kind(objects, "StatefulSet"):
        spec = pod_spec(sts)
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c["livenessProbe"] and c["readinessProbe"] and c["resources"]


def test_every_reference_resolves(scenario):
    """Names the pods use (ConfigMaps, Secrets, ServiceAccounts, Services,
    $(VARS)) exist in the release or are Secrets the values say exist."""
    name, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    existing = {s["existingSecret"] for s in merged["secrets"].values() if isinstance(s, dict) and s.get("existingSecret")}
    existing |= existing_infrastructure_secrets(merged)
    secrets = {n: set((s.get("data") or {}).keys()) for n, s in by_name(objects, "Secret").items()}
    configmaps = by_name(objects, "ConfigMap")
    accounts = set(by_name(objects, "ServiceAccount")) | {"default"}
    services = by_name(objects, "Service")

    for workload in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet") + of_kind(objects, "Job"):
        spec = pod_spec(workload)
        if "serviceAccountName" in spec:
            assert spec["serviceAccountName"] in accounts
        for c in spec["containers"]:
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            defined: set[str] = set()
            for var in env_list(c):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    if ref["name"] in existing:
                        pass
                    else:
                        assert ref["name"] in secrets, f"{workload['metadata']['name']}: {var['name']} from missing Secret {ref['name']}"
                        assert ref["key"] in secrets[ref["name"]], f"{var['name']}: Secret {ref['name']} has no key {ref['key']}"
                for used in re.findall(r"\$\(([A-Z0-9_]+)\)", var.get("value", "")):
                    assert used in defined, f"{var['name']} uses $({used}) before it is defined"
                defined.add(var["name"])
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps

    for svc in services.values():
        selector = svc["spec"]["selector"]
        matches = [
            w for w in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet")
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, svc["metadata"]["name"]
        port_names = {p["name"] for c in pod_spec(matches[0])["containers"] for p in c["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names

    for ing in of_kind(objects, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services
                assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}

    deployments = by_name(objects, "Deployment")
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = deployments[hpa["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "an autoscaled Deployment must leave replicas to the HPA"
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments.values())


def test_each_service_sees_only_its_own_database(scenario):
    _, _, objects = scenario
    for d in of_kind(objects, "Deployment"):
        name = component_of(d)
        urls = {v["name"] for v in env_list(container(d)) if v["name"].endswith("_DATABASE_URL")}
        expected = {f"{name.upper()}_DATABASE_URL"} if name in DATABASE_SERVICES else set()
        assert urls == expected, name
        names = {v["name"] for v in env_list(container(d))}
        assert ("AMQP_URI" in names) == (name in BROKER_COMPONENTS), f"{name}: AMQP_URI"


def test_configuration_reaches_every_component(scenario):
    _, values, objects = scenario
    (config,) = [cm for cm in of_kind(objects, "ConfigMap") if component_of(cm) is None]
    data = config["data"]
    assert data["PSYCOPG_WAIT_FUNC"] == "wait_select"
    assert data["HEALTH_PORT"] == data["PORT"] == "8000"
    assert data["PROXY_COUNT"] == "1", "the gateway is behind the ingress controller"
    assert all(isinstance(v, str) for v in data.values())
    assert not set(SECRET_ENV) & set(data), "secrets do not belong in the ConfigMap"
    assert data["GATEWAY_URL"].startswith("http://") and "gateway" in data["GATEWAY_URL"]
    for d in of_kind(objects, "Deployment"):
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in container(d)["envFrom"]
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/config" in annotations


def test_migration_job_is_a_hook_running_ticketing_migrate(scenario, components):
    name, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    jobs = [j for j in of_kind(objects, "Job") if component_of(j) == "migrate"]
    migrated = [s for s in DATABASE_SERVICES if enabled(values, s)]
    if not merged["migrations"]["enabled"] or not migrated:
        assert not jobs
        return
    (job,) = jobs
    hook = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert "pre-upgrade" in hook
    if merged["postgresql"]["inCluster"]["enabled"]:
        assert "post-install" in hook, "the in-chart database exists only after install"
    else:
        assert "pre-install" in hook
    assert "before-hook-creation" in job["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    c = container(job)
    assert c["args"] == ["migrate", *migrated]
    assert set(c["args"][1:]) <= set(components)
    env = {v["name"]: v for v in env_list(c)}
    assert env["PSYCOPG_WAIT_FUNC"]["value"] == "wait_select"
    assert {f"{s.upper()}_DATABASE_URL" for s in migrated} <= set(env)


def test_pre_install_hooks_use_nothing_the_release_has_not_created_yet(scenario):
    """Before install only hook objects and pre-existing Secrets exist."""
    name, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    existing = {s["existingSecret"] for s in merged["secrets"].values() if isinstance(s, dict) and s.get("existingSecret")}
    existing |= existing_infrastructure_secrets(merged)
    hooks = [o for o in objects if "helm.sh/hook" in o["metadata"].get("annotations", {})]
    pre_install = [o for o in hooks if "pre-install" in o["metadata"]["annotations"]["helm.sh/hook"]]
    hook_secrets = {o["metadata"]["name"] for o in pre_install if o["kind"] == "Secret"}
    for job in (o for o in pre_install if o["kind"] == "Job"):
        spec = pod_spec(job)
        assert "serviceAccountName" not in spec
        for c in spec["containers"]:
            assert "envFrom" not in c
            for var in env_list(c):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in existing | hook_secrets, var
        weights = {o["kind"]: int(o["metadata"]["annotations"].get("helm.sh/hook-weight", 0)) for o in pre_install}
        if "Secret" in weights:
            assert weights["Secret"] < weights["Job"]


def test_gateway_and_frontend_have_services_and_every_component_a_disruption_budget(scenario):
    _, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    services = {component_of(s) for s in of_kind(objects, "Service")}
    pdbs = {component_of(p): p for p in of_kind(objects, "PodDisruptionBudget")}
    hpas = {component_of(h) for h in of_kind(objects, "HorizontalPodAutoscaler")}
    for web in ("gateway", "frontend"):
        on = merged[web]["enabled"]
        assert (web in services) == on
        assert (web in hpas) == (on and merged[web]["autoscaling"]["enabled"])
    for component in DEPLOYED:
        on = merged[component]["enabled"]
        assert (component in pdbs) == (on and merged[component]["podDisruptionBudget"]["enabled"]), component
        if component in pdbs:
            deployment = by_name(objects, "Deployment")[pdbs[component]["metadata"]["name"]]
            assert pdbs[component]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert not hpas - {"gateway", "frontend"}


def test_production_runs_two_of_everything_apart_on_quorum_queues():
    """A node drain or a lost node never takes the last replica of anything."""
    objects = manifests(PRODUCTION_INSTALL)
    hpas = {component_of(h): h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    pdbs = {component_of(p): p["spec"] for p in of_kind(objects, "PodDisruptionBudget")}
    for d in of_kind(objects, "Deployment"):
        component = component_of(d)
        replicas = hpas[component]["spec"]["minReplicas"] if component in hpas else d["spec"]["replicas"]
        assert replicas >= 2, component
        assert pdbs[component] == {"maxUnavailable": 1, "selector": d["spec"]["selector"]}
        anti = pod_spec(d)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    (config,) = [cm for cm in of_kind(objects, "ConfigMap") if component_of(cm) is None]
    assert config["data"]["QUEUE_TYPE"] == "quorum"


def test_queue_type_is_classic_unless_asked():
    (config,) = [cm for cm in of_kind(manifests({}), "ConfigMap") if component_of(cm) is None]
    assert config["data"]["QUEUE_TYPE"] == "classic"
    assert all("affinity" not in pod_spec(d) for d in of_kind(manifests({}), "Deployment"))


def test_required_anti_affinity_and_a_component_s_own_affinity():
    own = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["apps"]}]}]}}}
    objects = manifests({"podAntiAffinity": "required", "orders": {"affinity": own}})
    for d in of_kind(objects, "Deployment"):
        affinity = pod_spec(d)["affinity"]
        if component_of(d) == "orders":
            assert affinity == own
        else:
            (term,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert term["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]


def test_web_components_set_their_worker_count(scenario):
    """A container sees the node's cores: without WEB_WORKERS the web server would start one worker per node core."""
    _, values, objects = scenario
    for deployment in of_kind(objects, "Deployment"):
        if component_of(deployment) in ("gateway", "frontend"):
            env = {e["name"]: e.get("value") for e in env_list(container(deployment))}
            assert env.get("WEB_WORKERS", "").isdigit(), env


# ------------------------------------------------------------ the ingress

def ingress_routes(objects) -> dict[str, str]:
    (ing,) = of_kind(objects, "Ingress")
    (rule,) = ing["spec"]["rules"]
    return {p["path"]: (p["pathType"], component_of(by_name(objects, "Service")[p["backend"]["service"]["name"]])) for p in rule["http"]["paths"]}


def test_ingress_routes_api_to_the_gateway_and_the_rest_to_the_frontend():
    objects = manifests({})
    (ing,) = of_kind(objects, "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["rules"][0]["host"] == "ticketing.local"
    assert ingress_routes(objects) == {"/api": ("Prefix", "gateway"), "/": ("Prefix", "frontend")}
    config = by_name(objects, "ConfigMap")["shop-ticketing"]["data"]
    assert config["PUBLIC_URL"] == "http://ticketing.local"


def test_ingress_follows_the_enabled_web_components():
    assert ingress_routes(manifests({"frontend": {"enabled": False}})) == {"/api": ("Prefix", "gateway")}
    assert ingress_routes(manifests({"gateway": {"enabled": False}})) == {"/": ("Prefix", "frontend")}
    assert not of_kind(manifests({"gateway": {"enabled": False}, "frontend": {"enabled": False}}), "Ingress")
    assert not of_kind(manifests({"ingress": {"enabled": False}}), "Ingress")


def test_ingress_tls_makes_the_public_url_https():
    objects = manifests(SCENARIOS["ingress-tls"])
    (ing,) = of_kind(objects, "Ingress")
    assert ing["spec"]["tls"] == [{"secretName": "t-tls", "hosts": ["t.example.com"]}]
    assert by_name(objects, "ConfigMap")["shop-ticketing"]["data"]["PUBLIC_URL"] == "https://t.example.com"


# ---------------------------------------------------------------- secrets

def secret_env(objects, component) -> dict[str, dict]:
    (d,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == component]
    return {v["name"]: v["valueFrom"]["secretKeyRef"] for v in env_list(container(d)) if "valueFrom" in v}


def test_defaults_generate_signing_keys_and_leave_payment_and_email_offline(monkeypatch):
    objects = manifests({})
    secret = by_name(objects, "Secret")["shop-ticketing"]
    keys = set(secret["data"])
    assert {"JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SECRET_KEY", "RABBITMQ_PASSWORD", "POSTGRES_PASSWORD",
            *(f"{s.upper()}_DB_PASSWORD" for s in DATABASE_SERVICES),
            *(f"{c.upper()}_AMQP_PASSWORD" for c in BROKER_COMPONENTS)} == keys
    assert all(len(base64.b64decode(v)) >= 32 for v in secret["data"].values())
    # the generated pair is a real one: what auth signs, the gateway verifies
    from services.common import keys as token_keys, tokens

    for name in ("JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY"):
        monkeypatch.setenv(name, base64.b64decode(secret["data"][name]).decode())
    assert tokens.verify_access_token(tokens.issue_access_token("u", "a@b.co"))["id"] == "u"
    assert token_keys.algorithm_of(token_keys.private_key()) == "EdDSA"
    assert "STRIPE_KEY" not in secret_env(objects, "payments")  # offline sandbox
    assert "SENDGRID_API_KEY" not in secret_env(objects, "confirmation")  # .eml files


def test_secrets_from_values_go_into_the_chart_secret_and_only_where_needed():
    objects = manifests(SCENARIOS["secrets-from-values"])
    secret = by_name(objects, "Secret")["shop-ticketing"]
    assert base64.b64decode(secret["data"]["STRIPE_KEY"]) == b"sk_test_from_values"
    assert secret_env(objects, "payments")["STRIPE_KEY"] == {"name": "shop-ticketing", "key": "STRIPE_KEY"}
    assert secret_env(objects, "confirmation")["SENDGRID_API_KEY"] == {"name": "shop-ticketing", "key": "SENDGRID_API_KEY"}
    own = {"auth": {"JWT_PRIVATE_KEY"}, "gateway": {"JWT_PUBLIC_KEY"}, "frontend": {"SECRET_KEY"},
           "payments": {"STRIPE_KEY"}, "confirmation": {"SENDGRID_API_KEY"}}
    app_secrets = {"JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SECRET_KEY", "STRIPE_KEY", "SENDGRID_API_KEY"}
    for component in ("auth", "tickets", "orders", "expiration", "payments", "confirmation", "gateway", "frontend"):
        env = secret_env(objects, component)
        assert set(env) & app_secrets == own.get(component, set()), component
    assert secret_env(objects, "auth")["JWT_PRIVATE_KEY"] == {"name": "shop-ticketing", "key": "JWT_PRIVATE_KEY"}


def test_existing_secrets_are_referenced_like_the_originals_stripe_and_sendgrid_secrets():
    objects = manifests(SCENARIOS["secrets-existing"])
    secret = by_name(objects, "Secret")["shop-ticketing"]  # only the in-chart infrastructure passwords
    assert set(secret["data"]) == {"RABBITMQ_PASSWORD", "POSTGRES_PASSWORD",
                                   *(f"{s.upper()}_DB_PASSWORD" for s in DATABASE_SERVICES),
                                   *(f"{c.upper()}_AMQP_PASSWORD" for c in BROKER_COMPONENTS)}
    assert secret_env(objects, "payments")["STRIPE_KEY"] == {"name": "stripe-secret", "key": "STRIPE_KEY"}
    assert secret_env(objects, "confirmation")["SENDGRID_API_KEY"] == {"name": "sendgrid-secret", "key": "SENDGRID_API_KEY"}


def test_production_values_file_holds_no_secret():
    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        else:
            yield path, node

    for path, value in walk(PRODUCTION):
        leaf = path.rsplit(".", 1)[-1].lower()
        if leaf in {"value", "password", "uri"} or path.startswith((".postgresql.external.urls",
                                                                     ".rabbitmq.perComponentUsers.passwords")):
            assert not value, f"{path} must not be set in values-production.yaml"
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", json.dumps(PRODUCTION)), "no credentials inside URLs"
    assert PRODUCTION["secrets"]["generate"] is False


def test_production_renders_no_secret_values():
    objects = manifests(PRODUCTION_INSTALL)
    assert not [s for s in of_kind(objects, "Secret") if s.get("data") or s.get("stringData")]
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            for c in pod_spec(obj)["containers"]:
                for var in env_list(c):
                    if var["name"] in SECRET_ENV or var["name"].endswith(("_DATABASE_URL", "PASSWORD")):
                        assert "value" not in var, f"{obj['metadata']['name']}: {var['name']} must come from a Secret"
                    if var["name"] == "AMQP_URI":  # credentials only as $(VAR) of a Secret's key
                        for uri in var["value"].split(";"):
                            assert re.fullmatch(r"amqps://[a-z-]+:\$\([A-Z_]+_AMQP_PASSWORD\)@[^@]+", uri), uri
    assert not of_kind(objects, "StatefulSet"), "production uses external RabbitMQ and PostgreSQL"
    for d in of_kind(objects, "Deployment"):
        component = component_of(d)
        if component in BROKER_COMPONENTS:
            assert secret_env(objects, component)[f"{component.upper()}_AMQP_PASSWORD"] == {
                "name": "ticketing-amqp-users", "key": f"{component.upper()}_AMQP_PASSWORD"}
    config = by_name(objects, "ConfigMap")["shop-ticketing"]["data"]
    assert config["TICKETING_ENV"] == "production"
    assert config["PUBLIC_URL"].startswith("https://")


@pytest.mark.parametrize("item", ["jwtPrivateKey", "jwtPublicKey", "secretKey", "stripeKey", "sendgridApiKey"])
def test_production_requires_each_secret_rather_than_inventing_one(item):
    import helm_python

    values = deep_merge(PRODUCTION_INSTALL, {"secrets": {item: {"existingSecret": ""}}})
    with pytest.raises(helm_python.HelmError, match=f"secrets.{item} is required"):
        render(values)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"rabbitmq": {"perComponentUsers": {"enabled": False}, "external": {"existingSecret": ""}}}, "rabbitmq.external"),
        ({"rabbitmq": {"external": {"addresses": ""}}}, "rabbitmq.external.addresses"),
        ({"rabbitmq": {"external": {"managementUrl": ""}}}, "rabbitmq.external.managementUrl"),
        ({"postgresql": {"external": {"existingSecret": ""}}}, "postgresql.external"),
    ],
    ids=["rabbitmq-one-user", "rabbitmq-addresses", "rabbitmq-management-url", "postgresql"],
)
def test_external_infrastructure_must_be_configured(override, message):
    import helm_python

    with pytest.raises(helm_python.HelmError, match=message):
        render(deep_merge(PRODUCTION_INSTALL, override))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"perComponentUsers": {"existingSecret": ""}}, "rabbitmq.perComponentUsers: auth's broker password is required"),
        ({"external": {"adminExistingSecret": ""}}, "rabbitmq.external.adminExistingSecret is required"),
    ],
    ids=["component-passwords", "administrator"],
)
def test_production_requires_the_broker_passwords_rather_than_inventing_them(override, message):
    import helm_python

    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(deep_merge(PRODUCTION_INSTALL, {"rabbitmq": override}))


# ---------------------------------------------------- the broker's users

def broker_users_job(objects) -> dict | None:
    jobs = [j for j in of_kind(objects, "Job") if component_of(j) == "broker-users"]
    assert len(jobs) <= 1
    return jobs[0] if jobs else None


def expand(value: str, secrets: dict[str, str]) -> str:
    """What Kubernetes does with $(VAR) in an env value."""
    return re.sub(r"\$\(([A-Z0-9_]+)\)", lambda m: secrets[m.group(1)], value)


def test_each_component_connects_as_its_own_broker_user(scenario):
    """Its own user and AMQP_URI, its own password from its own Secret key, nobody else's; the frontend none."""
    _, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    users = merged["rabbitmq"]["perComponentUsers"]
    for d in of_kind(objects, "Deployment"):
        component = component_of(d)
        env = {v["name"]: v for v in env_list(container(d))}
        passwords = {name for name in env if name.endswith("_PASSWORD") and not name.endswith("_DB_PASSWORD")}
        if component not in BROKER_COMPONENTS:
            assert "AMQP_URI" not in env and not passwords, f"{component} never talks to the broker"
            continue
        if not users["enabled"]:
            assert passwords <= {"RABBITMQ_PASSWORD"}, component
            continue
        own = f"{component.upper()}_AMQP_PASSWORD"
        assert passwords == {own}, f"{component} sees {passwords}"
        assert env[own]["valueFrom"]["secretKeyRef"] == {"name": users["existingSecret"] or "shop-ticketing", "key": own}
        uris = env["AMQP_URI"]["value"].split(";")
        for uri in uris:
            assert re.fullmatch(rf"amqps?://{users['usernamePrefix']}{component}:\$\({own}\)@[^@]+", uri), uri


def test_broker_uris_name_the_user_the_password_the_hosts_and_the_vhost():
    """What kombu makes of the URIs once Kubernetes has put the password in."""
    from kombu import Connection

    for values, hosts, vhost in (
        ({}, ["shop-ticketing-rabbitmq"], "/"),
        ({"rabbitmq": EXTERNAL_BROKER}, ["mq-0", "mq-1"], "shop"),
        ({"rabbitmq": deep_merge(EXTERNAL_BROKER, {"external": {"vhost": "/"}})}, ["mq-0", "mq-1"], "/"),
    ):
        objects = manifests(values)
        for d in of_kind(objects, "Deployment"):
            component = component_of(d)
            if component not in BROKER_COMPONENTS:
                continue
            env = {v["name"]: v for v in env_list(container(d))}
            uris = expand(env["AMQP_URI"]["value"], {f"{component.upper()}_AMQP_PASSWORD": "s3cret"}).split(";")
            parsed = [Connection(uri) for uri in uris]  # not connected
            assert [p.hostname for p in parsed] == hosts
            for p in parsed:
                assert (p.userid, p.password, p.virtual_host, p.port) == (f"ticketing-{component}", "s3cret", vhost, 5672)


def test_only_the_broker_users_job_sees_the_broker_administrator_s_password(scenario):
    _, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    if not merged["rabbitmq"]["perComponentUsers"]["enabled"]:
        return  # one shared user: every component connects as it
    admin_secret = merged["rabbitmq"]["external"]["adminExistingSecret"]
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job") + of_kind(objects, "StatefulSet"):
        for c in pod_spec(workload)["containers"]:
            for var in env_list(c):
                ref = var.get("valueFrom", {}).get("secretKeyRef") or {}
                admin = ref.get("key") == "RABBITMQ_PASSWORD" or (admin_secret and ref.get("name") == admin_secret)
                if admin:
                    assert component_of(workload) in ("broker-users", "rabbitmq"), \
                        f"{workload['metadata']['name']} sees the broker administrator ({var['name']})"


def test_the_broker_users_job_runs_ticketing_broker_users_for_every_component(scenario):
    from services.common.broker_users import COMPONENTS

    _, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    mq = merged["rabbitmq"]
    users = mq["perComponentUsers"]
    job = broker_users_job(objects)
    if not (users["enabled"] and users["job"]["enabled"]):
        assert job is None
        return
    assert set(BROKER_COMPONENTS) == set(COMPONENTS)
    c = container(job)
    assert c["args"] == ["broker-users"]
    env = {v["name"]: v for v in env_list(c)}
    assert set(env) == {"RABBITMQ_MANAGEMENT_URL", "RABBITMQ_VHOST", "RABBITMQ_WAIT_SECONDS", "RABBITMQ_ADMIN_USER",
                        "RABBITMQ_ADMIN_PASSWORD", *(f"{c.upper()}_AMQP_{what}" for c in COMPONENTS
                                                     for what in ("USER", "PASSWORD"))}
    if mq["inCluster"]["enabled"]:
        assert env["RABBITMQ_MANAGEMENT_URL"]["value"] == "http://shop-ticketing-rabbitmq:15672"
        assert env["RABBITMQ_ADMIN_USER"]["value"] == mq["inCluster"]["username"]
        assert env["RABBITMQ_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "shop-ticketing",
                                                                             "key": "RABBITMQ_PASSWORD"}
        assert env["RABBITMQ_VHOST"]["value"] == "/"
    else:
        assert env["RABBITMQ_MANAGEMENT_URL"]["value"] == mq["external"]["managementUrl"]
        for name in ("RABBITMQ_ADMIN_USER", "RABBITMQ_ADMIN_PASSWORD"):
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": mq["external"]["adminExistingSecret"], "key": name}
        assert env["RABBITMQ_VHOST"]["value"] == mq["external"]["vhost"]
    # the Job makes the very users, with the very passwords, the pods connect with
    secrets = by_name(objects, "Secret")
    for d in of_kind(objects, "Deployment"):
        component = component_of(d)
        if component not in BROKER_COMPONENTS:
            continue
        key = f"{component.upper()}_AMQP_PASSWORD"
        pod_env = {v["name"]: v for v in env_list(container(d))}
        assert pod_env["AMQP_URI"]["value"].split("://", 1)[1].startswith(env[f"{component.upper()}_AMQP_USER"]["value"] + ":")
        job_ref = env[key]["valueFrom"]["secretKeyRef"]
        pod_ref = pod_env[key]["valueFrom"]["secretKeyRef"]
        assert job_ref["key"] == pod_ref["key"] == key
        if users["existingSecret"]:
            assert job_ref["name"] == pod_ref["name"] == users["existingSecret"]
        else:
            assert secrets[job_ref["name"]]["data"][key] == secrets[pod_ref["name"]]["data"][key]
            assert len(base64.b64decode(secrets[pod_ref["name"]]["data"][key])) >= 16


def test_the_broker_users_job_runs_when_the_broker_exists_and_before_the_pods_need_it(scenario):
    _, values, objects = scenario
    merged = deep_merge(load_values("values.yaml"), values)
    job = broker_users_job(objects)
    if job is None:
        return
    annotations = job["metadata"]["annotations"]
    if merged["rabbitmq"]["inCluster"]["enabled"]:
        # the in-chart broker is one of the release's objects: it exists only after install
        assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    else:
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    hook_secrets = [s for s in of_kind(objects, "Secret") if component_of(s) == "broker-users"]
    for secret in hook_secrets:
        assert secret["metadata"]["annotations"]["helm.sh/hook"] == annotations["helm.sh/hook"]
        assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    migrate = [j for j in of_kind(objects, "Job") if component_of(j) == "migrate"]
    for m in migrate:
        assert int(annotations["helm.sh/hook-weight"]) < int(m["metadata"]["annotations"]["helm.sh/hook-weight"])


def test_the_in_chart_broker_serves_the_management_api_the_job_calls():
    objects = manifests({"rabbitmq": {"inCluster": {"image": "rabbitmq:3"}}})  # even an image without it enabled
    (sts,) = [s for s in of_kind(objects, "StatefulSet") if component_of(s) == "rabbitmq"]
    c = container(sts)
    env = {v["name"]: v.get("value") for v in env_list(c)}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    (volume,) = [v for v in pod_spec(sts)["volumes"] if v["name"] == "plugins"]
    plugins = by_name(objects, "ConfigMap")[volume["configMap"]["name"]]["data"]["enabled_plugins"]
    assert env["RABBITMQ_ENABLED_PLUGINS_FILE"] == f"{mounts['plugins']}/enabled_plugins"
    assert re.fullmatch(r"\[[a-z_,]+\]\.\n?", plugins) and "rabbitmq_management" in plugins
    assert 15672 in {p["containerPort"] for p in c["ports"]}
    service = by_name(objects, "Service")["shop-ticketing-rabbitmq"]
    assert {"name": "management", "port": 15672, "targetPort": "management"} in service["spec"]["ports"]


def test_with_the_toggle_off_every_component_shares_the_one_broker_user():
    objects = manifests(SCENARIOS["broker-users-disabled"])
    assert broker_users_job(objects) is None
    assert not any(k.endswith("_AMQP_PASSWORD") for s in of_kind(objects, "Secret") for k in s.get("data", {}))
    for d in of_kind(objects, "Deployment"):
        if component_of(d) in BROKER_COMPONENTS:
            env = {v["name"]: v for v in env_list(container(d))}
            assert env["AMQP_URI"]["value"] == "amqp://ticketing:$(RABBITMQ_PASSWORD)@shop-ticketing-rabbitmq:5672/"
    objects = manifests(SCENARIOS["rabbitmq-external-secret"])
    for d in of_kind(objects, "Deployment"):
        if component_of(d) in BROKER_COMPONENTS:
            assert secret_env(objects, component_of(d))["AMQP_URI"] == {"name": "mq", "key": "AMQP_URI"}


def test_broker_passwords_from_values_reach_the_job_and_the_pods():
    objects = manifests(SCENARIOS["broker-users-from-values"])
    secrets = by_name(objects, "Secret")
    for name in ("shop-ticketing", "shop-ticketing-broker-users"):
        assert base64.b64decode(secrets[name]["data"]["ORDERS_AMQP_PASSWORD"]) == b"orders-pw-0123456789abcdef"


# ------------------------------------------------- values toggles, scale

def test_replicas_come_from_values():
    objects = manifests({"orders": {"replicas": 4}, "gateway": {"replicas": 3}})
    replicas = {component_of(d): d["spec"].get("replicas") for d in of_kind(objects, "Deployment")}
    assert replicas["orders"] == 4 and replicas["gateway"] == 3


def test_image_and_pull_secrets_come_from_values():
    objects = manifests(PRODUCTION_INSTALL)
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        assert container(workload)["image"] == "registry.example.com/ticketing:1.2.3"
    objects = manifests({})
    assert {container(d)["image"] for d in of_kind(objects, "Deployment")} == {"ticketing:0.1.0"}


def test_in_chart_postgresql_creates_one_database_and_role_per_service():
    from .support import REPO

    objects = manifests({})
    init = by_name(objects, "ConfigMap")["shop-ticketing-postgresql-init"]["data"]["10-init-roles.sh"]
    listed = re.search(r"for service in (.+); do", init).group(1).split()
    assert listed == list(DATABASE_SERVICES)
    compose_script = (REPO / "deploy" / "postgres" / "init-roles.sh").read_text()
    assert re.search(r"for service in (.+); do", compose_script).group(1).split() == listed
    statements = re.findall(r"^\s*((?:CREATE|REVOKE) .+;)$", init, re.M)
    assert statements == re.findall(r"^\s*((?:CREATE|REVOKE) .+;)$", compose_script, re.M) and len(statements) == 3
    (postgres,) = [s for s in of_kind(objects, "StatefulSet") if "postgresql" in s["metadata"]["name"]]
    env = {v["name"] for v in env_list(container(postgres))}
    assert {f"{s.upper()}_DB_PASSWORD" for s in DATABASE_SERVICES} <= env
    for d in of_kind(objects, "Deployment"):
        component = component_of(d)
        for var in env_list(container(d)):
            if var["name"].endswith("_DATABASE_URL"):
                svc = var["name"].removesuffix("_DATABASE_URL").lower()
                assert svc == component, f"{component} sees {svc}'s database"
                assert var["value"].startswith(f"postgresql+psycopg://ticketing_{svc}:$({svc.upper()}_DB_PASSWORD)@")
            assert var["name"] != "POSTGRES_PASSWORD", f"{component} must not get the administrator's password"


def test_notes_say_how_to_reach_the_app():
    notes = render({})["ticketing/templates/NOTES.txt"]
    assert "http://ticketing.local" in notes and "/api" in notes
    notes = render(PRODUCTION_INSTALL)["ticketing/templates/NOTES.txt"]
    assert "https://tickets.example.com" in notes
    assert "offline sandbox" not in notes
    notes = render({"ingress": {"enabled": False}})["ticketing/templates/NOTES.txt"]
    assert "port-forward" in notes


@pytest.mark.parametrize(
    "values",
    [{"orders": {"replica": 3}}, {"orders": {"replicas": "three"}}, {"config": {"environment": "prod"}}, {"gatway": {"enabled": False}},
     {"config": {"queueType": "lazy"}}, {"podAntiAffinity": "always"},
     {"rabbitmq": {"external": {"addresses": "amqps://u:p@rabbit.example.com:5671"}}},
     {"rabbitmq": {"perComponentUsers": {"passwords": {"auth": "p@ss/word"}}}},
     {"rabbitmq": {"perComponentUsers": {"passwords": {"frontend": "abc"}}}}],
    ids=["typo-in-a-component", "wrong-type", "unknown-environment", "unknown-component", "unknown-queue-type",
         "unknown-anti-affinity", "credentials-in-broker-addresses", "password-not-url-safe", "frontend-broker-user"],
)
def test_values_schema_rejects_mistakes(values):
    import helm_python

    with pytest.raises(helm_python.HelmError, match="schema"):
        render(values)




def mebibytes(quantity: str) -> float:
    units = {"Ki": 2 ** -10, "Mi": 1, "Gi": 2 ** 10, "K": 1e3 / 2 ** 20, "M": 1e6 / 2 ** 20, "G": 1e9 / 2 ** 20}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()
    return float(number) * units.get(unit, 1 / 2 ** 20)


@pytest.mark.parametrize("values,fits", [({}, True), (PRODUCTION_INSTALL, True),
                                         ({"auth": {"env": {"ARGON2_MAX_CONCURRENT": "7"}}}, False)],
                         ids=["defaults", "production", "seven-at-once-does-not-fit"])
def test_auth_s_memory_limit_holds_every_password_hash_it_may_run_at_once(values, fits):
    """Argon2 takes ARGON2_MEMORY_KIB per hash and auth runs ARGON2_MAX_CONCURRENT at once: the limit
    must hold them all (the chart's 384 Mi once held only ~5 hashes of 64 MiB while 10 could run)."""
    from services.auth.settings import AuthSettings

    objects = manifests(values)
    (auth,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "auth"]
    env = {e["name"]: e["value"] for e in container(auth).get("env", []) if "value" in e}
    (config,) = [cm for cm in of_kind(objects, "ConfigMap") if component_of(cm) is None]
    settings = AuthSettings.load({**config["data"], **env}, environ={})  # not the tests' cheap hashes
    needed = AUTH_BASE_MIB + settings.argon2_max_concurrent * settings.argon2_memory_kib / 1024
    limit = mebibytes(container(auth)["resources"]["limits"]["memory"])
    assert (limit >= needed) is fits, f"auth's limit {limit:.0f} MiB, {needed:.0f} MiB needed"
