"""Rule checks on the rendered Helm chart and kustomize trees (pytest, no cluster).

Run through deploy/check.sh, or directly:
    /var/tmp/bs-deploy-venv/bin/python -m pytest -q deploy/test_chart.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import render
from render import SERVICES, by_kind, pod_labels, pod_spec, selector_matches

VALUES = {path.stem: render.load_yaml(path) for path in render.values_files()}
PORTS = {name: 50050 + i for i, name in enumerate(SERVICES)}
HOOK_EVENTS = {"pre-install", "pre-upgrade"}


@pytest.fixture(scope="module", params=sorted(VALUES))
def case(request):
    """(values file name, merged values, rendered objects) for every values file."""
    values = VALUES[request.param]
    return request.param, render.merged_values(values), render.render_chart(values)


def enabled_services(merged: dict) -> list[str]:
    return [s for s in SERVICES if merged["services"][s]["enabled"]]


def workloads(objects):
    return [o for o in objects if pod_spec(o) is not None]


def service_deployments(objects) -> dict[str, dict]:
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in by_kind(objects, "Deployment")}


def env_names(container) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


def is_hook(obj) -> bool:
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


# ----------------------------------------------------------------------------- pods


def assert_pod_hardened(obj):
    spec = pod_spec(obj)
    name = render.describe(obj)
    psc = spec.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot"
    assert psc.get("runAsUser", 1) != 0, f"{name}: pod runs as uid 0"
    assert (psc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost"), f"{name}: seccomp"
    assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, f"{name}: host namespaces"
    assert spec.get("enableServiceLinks") is False, (
        f"{name}: enableServiceLinks must be false (service links inject BRANCHSCORE_<SVC>_PORT... variables)"
    )
    assert spec.get("automountServiceAccountToken") is False, f"{name}: API token mounted"
    for container in spec["containers"] + spec.get("initContainers", []):
        sc = container.get("securityContext", {})
        where = f"{name}/{container['name']}"
        assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
        assert sc.get("privileged", False) is False, f"{where}: privileged"
        assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
        assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), f"{where}: capabilities not dropped"
        assert not (sc.get("capabilities") or {}).get("add"), f"{where}: capabilities added"
        assert sc.get("runAsUser", 1) != 0, f"{where}: container runs as uid 0"
        assert container.get("resources", {}).get("requests"), f"{where}: no resource requests"
        assert (container.get("resources", {}).get("limits") or {}).get("memory"), f"{where}: no memory limit"


def test_every_pod_is_hardened(case):
    _, _, objects = case
    assert workloads(objects), "no workload rendered"
    for obj in workloads(objects):
        assert_pod_hardened(obj)


def test_every_service_container_has_native_grpc_probes(case):
    _, merged, objects = case
    for component, deployment in service_deployments(objects).items():
        (container,) = pod_spec(deployment)["containers"]
        port = merged["services"][component]["port"]
        assert container["ports"][0] == {"name": "grpc", "containerPort": port, "protocol": "TCP"}
        for kind in ("livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            assert probe, f"{component}: {kind} missing"
            assert probe.get("grpc", {}).get("port") == port, f"{component}: {kind} is not a gRPC probe on {port}"
        startup = container.get("startupProbe")
        if startup:
            assert startup["grpc"]["port"] == port
        assert container["args"][-2:] == ["serve", component]


def test_service_env_names_only_the_service_it_runs(case):
    """A pod may only carry BRANCHSCORE_<SVC>__ keys for its own service (the config
    rejects unknown keys, and services not yet built have no section)."""
    _, merged, objects = case
    service_sections = {s.upper() for s in SERVICES}
    enabled = {s.upper() for s in enabled_services(merged)}
    for component, deployment in service_deployments(objects).items():
        (container,) = pod_spec(deployment)["containers"]
        names = env_names(container)
        for name in names:
            match = re.match(r"^BRANCHSCORE_([A-Z]+)__", name)
            if match and match.group(1) in service_sections:
                assert match.group(1) == component.upper(), f"{component} pod sets {name}"
        assert f"BRANCHSCORE_{component.upper()}__SERVER__LISTEN" in names
        listen = next(e["value"] for e in container["env"] if e["name"].endswith("__SERVER__LISTEN"))
        assert listen.endswith(f":{merged['services'][component]['port']}")
        has_db = merged["services"][component]["database"]["enabled"]
        assert (f"BRANCHSCORE_{component.upper()}__DATABASE__URL" in names) == has_db
        if has_db:
            migrate = next(e["value"] for e in container["env"] if e["name"].endswith("__DATABASE__MIGRATE_ON_START"))
            assert migrate == ("false" if merged["migrations"]["enabled"] else "true")
        peers = {p.upper() for p in merged["services"][component].get("peers") or []} & enabled
        peer_values = {
            e["name"].removeprefix("BRANCHSCORE_PEERS__"): e["value"] for e in container["env"] if e["name"].startswith("BRANCHSCORE_PEERS__")
        }
        given = {peer for peer, url in peer_values.items() if url}
        assert given == peers - {component.upper()}, f"{component}: peer URLs {given} != {peers}"
        if component == "gateway":
            # The gateway routes every package: a peer left unset would default to
            # 127.0.0.1, so every peer it does not call is set, and empty (not routed).
            assert set(peer_values) == {s.upper() for s in SERVICES} - {"GATEWAY"}, sorted(peer_values)
        else:
            assert all(peer_values.values()), f"{component}: empty peer URL {peer_values}"
        for peer, url in peer_values.items():
            if url:
                assert url == f"http://{render.RELEASE}-branchscore-{peer.lower()}:{PORTS[peer.lower()]}"
    for cm in by_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            match = re.match(r"^BRANCHSCORE_([A-Z]+)__", key)
            assert not (match and match.group(1) in service_sections | {"PEERS"}), f"shared ConfigMap sets {key}"


def test_drain_fits_in_the_grace_period(case):
    _, merged, objects = case
    for component, deployment in service_deployments(objects).items():
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        drain = int(next(e["value"] for e in container["env"] if e["name"].endswith("SHUTDOWN_DRAIN_DELAY_MS")))
        assert spec["terminationGracePeriodSeconds"] * 1000 > drain + 10_000, component


def test_services_select_their_deployment(case):
    _, merged, objects = case
    deployments = service_deployments(objects)
    services = by_kind(objects, "Service")
    assert sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in services) == sorted(deployments)
    for svc in services:
        component = svc["metadata"]["labels"]["app.kubernetes.io/component"]
        matched = [c for c, d in deployments.items() if selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(d))]
        assert matched == [component]
        grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
        assert grpc["port"] == merged["services"][component]["port"] and grpc["targetPort"] == "grpc"
        assert grpc["appProtocol"] == "kubernetes.io/h2c"


# ----------------------------------------------------------------------------- network


def test_network_policies_isolate_every_service(case):
    _, merged, objects = case
    deployments = service_deployments(objects)
    policies = by_kind(objects, "NetworkPolicy")
    if not merged["networkPolicy"]["enabled"]:
        assert policies == []
        return
    assert len(policies) == len(deployments)
    for policy in policies:
        selected = [c for c, d in deployments.items() if selector_matches(policy["spec"]["podSelector"], pod_labels(d))]
        assert len(selected) == 1, f"{render.describe(policy)} selects {selected}"
        component = selected[0]
        assert "Ingress" in policy["spec"]["policyTypes"]
        rules = policy["spec"].get("ingress") or []
        grpc_rules = [r for r in rules if any(p["port"] == "grpc" for p in r.get("ports", []))]
        for rule in rules:
            assert rule.get("ports"), f"{component}: an ingress rule without ports opens every port"
        if component == "gateway":
            assert len(grpc_rules) == 1
            assert grpc_rules[0].get("from", []) == merged["networkPolicy"]["gatewayFrom"]
            continue
        # Internal service: never an open rule, and the callers are exactly the gateway
        # plus the enabled services that list it as a peer.
        for rule in rules:
            assert rule.get("from"), f"{component}: an ingress rule without 'from' admits everyone"
        expected = sorted(
            c
            for c in deployments
            if c != component and (c == "gateway" or component in (merged["services"][c].get("peers") or []))
        )
        callers = []
        for rule in grpc_rules:
            for peer in rule["from"]:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    hits = [c for c, d in deployments.items() if selector_matches(peer["podSelector"], pod_labels(d))]
                    assert len(hits) == 1, f"{component}: caller selector matches {hits}"
                    callers.extend(hits)
        assert sorted(callers) == expected, f"{component}: callers {callers} != {expected}"
        if not expected and not merged["networkPolicy"]["extraFrom"].get(component):
            assert grpc_rules == [], f"{component}: has a gRPC rule but no callers"


def test_egress_policies_reach_dns_and_peers(case):
    _, merged, objects = case
    if not (merged["networkPolicy"]["enabled"] and merged["networkPolicy"]["egress"]["enabled"]):
        for policy in by_kind(objects, "NetworkPolicy"):
            assert "Egress" not in policy["spec"]["policyTypes"]
        return
    deployments = service_deployments(objects)
    for policy in by_kind(objects, "NetworkPolicy"):
        component = policy["metadata"]["labels"]["app.kubernetes.io/component"]
        egress = policy["spec"]["egress"]
        assert any(p.get("port") == 53 and p["protocol"] == "UDP" for r in egress for p in r.get("ports", []))
        for peer in merged["services"][component].get("peers") or []:
            if peer in deployments and peer != component:
                rules = [r for r in egress if any(p.get("port") == PORTS[peer] for p in r.get("ports", []))]
                assert rules, f"{component} cannot reach peer {peer}"
                assert selector_matches(rules[0]["to"][0]["podSelector"], pod_labels(deployments[peer]))


# ----------------------------------------------------------------------------- scaling


def test_hpa_pdb_and_replicas(case):
    _, merged, objects = case
    deployments = service_deployments(objects)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(objects, "HorizontalPodAutoscaler")}
    for component, deployment in deployments.items():
        autoscaling = merged["services"][component]["autoscaling"]["enabled"]
        assert (deployment["metadata"]["name"] in hpas) == autoscaling, component
        assert ("replicas" in deployment["spec"]) != autoscaling, f"{component}: replicas fights the HPA"
    pdbs = by_kind(objects, "PodDisruptionBudget")
    expected = sorted(c for c in deployments if merged["services"][c]["pdb"]["enabled"])
    covered = []
    for pdb in pdbs:
        hits = [c for c, d in deployments.items() if selector_matches(pdb["spec"]["selector"], pod_labels(d))]
        assert len(hits) == 1
        covered.extend(hits)
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
    assert sorted(covered) == expected


# ----------------------------------------------------------------------------- migrations


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(case):
    _, merged, objects = case
    jobs = by_kind(objects, "Job")
    db_services = [s for s in enabled_services(merged) if merged["services"][s]["database"]["enabled"]]
    if not (merged["migrations"]["enabled"] and db_services):
        assert jobs == []
        return
    (job,) = jobs
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == HOOK_EVENTS
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["migrate", *db_services]
    names = env_names(container)
    for svc in db_services:
        assert f"BRANCHSCORE_{svc.upper()}__DATABASE__URL" in names
    # Everything the Job needs at pre-install must itself be a hook created before it.
    job_weight = int(annotations["helm.sh/hook-weight"])
    needed = {("ServiceAccount", pod_spec(job)["serviceAccountName"])}
    needed |= {("Secret", e["valueFrom"]["secretKeyRef"]["name"]) for e in container["env"] if "valueFrom" in e}
    for kind, name in needed:
        if kind == "Secret" and name == merged["secrets"]["existingSecret"]:
            continue
        if kind == "ServiceAccount" and name == "default":
            continue
        (dep,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert is_hook(dep), f"the migration Job needs {kind}/{name}, which is not a hook"
        assert set(dep["metadata"]["annotations"]["helm.sh/hook"].split(",")) == HOOK_EVENTS
        assert int(dep["metadata"]["annotations"]["helm.sh/hook-weight"]) < job_weight
    assert pod_spec(job)["restartPolicy"] == "Never"


# ----------------------------------------------------------------------------- secrets


def test_secrets_come_from_the_chart_or_the_existing_secret(case):
    name, merged, objects = case
    existing = merged["secrets"]["existingSecret"]
    release_secrets = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    if existing:
        assert release_secrets == [], "the chart must not create a Secret when existingSecret is set"
    else:
        (secret,) = release_secrets
        keys = set(secret["stringData"])
        for svc in enabled_services(merged):
            if merged["services"][svc]["database"]["enabled"]:
                assert f"{svc}-database-url" in keys
        assert keys & {"jwt-hs256-secret", "jwt-rs256-public-key.pem"}, "no JWT key"
    expected_secret = existing or f"{render.RELEASE}-branchscore-secrets"
    provided = set() if existing else set(release_secrets[0]["stringData"])
    for deployment in by_kind(objects, "Deployment"):
        spec = pod_spec(deployment)
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"] for c in spec["containers"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
        }
        refs |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        assert refs <= {expected_secret}, refs
        for container in spec["containers"]:
            secret_env = [e for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
            for env in secret_env:
                ref = env["valueFrom"]["secretKeyRef"]
                if ref["key"] == "jwt-rs256-signing-key.pem":
                    # Optional by design: without it nothing is signed; nothing falls back.
                    assert ref.get("optional") is True
                    continue
                # Optional refs would let the binary fall back to a local Redis or the
                # public development JWT secret.
                assert not ref.get("optional"), f"{env['name']} is optional"
                if not existing:
                    assert ref["key"] in provided, f"{env['name']} refers to missing key {ref['key']}"
            # One verification key (HS256 or RS256); the signing key is not one.
            jwt = [
                e["name"]
                for e in secret_env
                if e["name"].startswith("BRANCHSCORE_AUTH__") and e["name"] != "BRANCHSCORE_AUTH__RS256_SIGNING_KEY_PEM"
            ]
            assert len(jwt) == 1, f"exactly one JWT verification key expected, got {jwt}"
            assert "BRANCHSCORE_REDIS__URL" in [e["name"] for e in secret_env]
        if not existing:
            assert "checksum/secret" in deployment["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_every_object_is_labelled(case):
    _, _, objects = case
    for obj in objects:
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == render.RELEASE, render.describe(obj)
        assert labels.get("app.kubernetes.io/name") == "branchscore", render.describe(obj)
        assert len(obj["metadata"]["name"]) <= 63, render.describe(obj)


# ----------------------------------------------------------------------------- toggles


@pytest.mark.parametrize("only", SERVICES)
def test_disabled_services_render_nothing(only):
    values = {"services": {s: {"enabled": s == only} for s in SERVICES}}
    objects = render.render_chart(values)
    for obj in objects:
        component = (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
        assert component in (None, only, "migrate"), f"{render.describe(obj)} rendered for disabled {component}"
        text = yaml.safe_dump(obj)
        for other in SERVICES:
            if other != only:
                assert f"branchscore-{other}" not in text, f"{render.describe(obj)} mentions {other}"
                assert f"BRANCHSCORE_{other.upper()}__" not in text, f"{render.describe(obj)} configures {other}"
    assert len(service_deployments(objects)) == 1


def test_all_services_disabled_renders_no_workload():
    values = {"services": {s: {"enabled": False} for s in SERVICES}}
    objects = render.render_chart(values)
    assert workloads(objects) == []
    assert by_kind(objects, "NetworkPolicy") == [] and by_kind(objects, "Service") == []


def test_an_isolated_service_gets_no_open_rule():
    """clients alone (every service that calls it disabled): nobody may call it."""
    values = {"services": {name: {"enabled": False} for name in SERVICES if name != "clients"}}
    objects = render.render_chart(values)
    (policy,) = by_kind(objects, "NetworkPolicy")
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from") and all(p["port"] != "grpc" for p in rule["ports"])


def test_migrations_off_means_migrate_on_start():
    objects = render.render_chart({"migrations": {"enabled": False}})
    assert by_kind(objects, "Job") == []
    clients = service_deployments(objects)["clients"]
    env = {e["name"]: e.get("value") for e in pod_spec(clients)["containers"][0]["env"]}
    assert env["BRANCHSCORE_CLIENTS__DATABASE__MIGRATE_ON_START"] == "true"


def test_service_monitor_is_optional_and_selects_the_metrics_ports():
    assert by_kind(render.render_chart({}), "ServiceMonitor") == []
    objects = render.render_chart({"metrics": {"serviceMonitor": {"enabled": True}}})
    (monitor,) = by_kind(objects, "ServiceMonitor")
    services = [s for s in by_kind(objects, "Service") if selector_matches(monitor["spec"]["selector"], s["metadata"]["labels"])]
    # All six are enabled by default: gateway, clients, pipeline, feedback, kpi, reporting.
    assert sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in services) == sorted(SERVICES)
    for svc in services:
        assert any(p["name"] == monitor["spec"]["endpoints"][0]["port"] for p in svc["spec"]["ports"])


GATEWAY_EDGE_ENV = {
    "BRANCHSCORE_GATEWAY__RATE_LIMIT__CALLS_PER_SECOND",
    "BRANCHSCORE_GATEWAY__RATE_LIMIT__BURST",
    "BRANCHSCORE_GATEWAY__MAX_DEADLINE_MS",
    "BRANCHSCORE_GATEWAY__API_KEY_TOKEN_TTL_MS",
    "BRANCHSCORE_GATEWAY__CORS_ALLOWED_ORIGINS",
}


def gateway_container(values: dict) -> dict:
    (container,) = pod_spec(service_deployments(render.render_chart(values))["gateway"])["containers"]
    return container


def test_gateway_keeps_its_api_keys_in_its_own_database():
    """The gateway's database (API keys, hashed) is read from `gateway-database-url` and
    migrated by the hook Job with the others; no API key file is mounted any more (the
    binary refuses BRANCHSCORE_GATEWAY__API_KEYS_FILE as an unknown key)."""
    objects = render.render_chart({})
    container = gateway_container({})
    env = env_map(container)
    assert env["BRANCHSCORE_GATEWAY__DATABASE__URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{render.RELEASE}-branchscore-secrets",
        "key": "gateway-database-url",
    }
    assert env["BRANCHSCORE_GATEWAY__DATABASE__MIGRATE_ON_START"]["value"] == "false"
    assert env["BRANCHSCORE_GATEWAY__DATABASE__MAX_CONNECTIONS"]["value"] == "10"
    (secret,) = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    assert secret["stringData"]["gateway-database-url"] == "postgres://branchscore@postgres:5432/branchscore_gateway"
    (hook_secret,) = [s for s in by_kind(objects, "Secret") if is_hook(s)]
    assert hook_secret["stringData"]["gateway-database-url"] == secret["stringData"]["gateway-database-url"]
    (job,) = by_kind(objects, "Job")
    assert pod_spec(job)["containers"][0]["args"][:2] == ["migrate", "gateway"]
    text = yaml.safe_dump_all(objects)
    assert "API_KEYS_FILE" not in text and "api-keys" not in text
    assert [v["name"] for v in pod_spec(service_deployments(objects)["gateway"])["volumes"]] == ["tmp"]
    given = "postgres://gw:pw@pg-gw:5432/branchscore_gateway?sslmode=require"
    objects = render.render_chart({"secrets": {"databaseUrls": {"gateway": given}}})
    (secret,) = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    assert secret["stringData"]["gateway-database-url"] == given
    # Without its database the gateway gets no database keys and the Job skips it.
    objects = render.render_chart({"services": {"gateway": {"database": {"enabled": False}}}})
    assert "BRANCHSCORE_GATEWAY__DATABASE__URL" not in env_names(gateway_container({"services": {"gateway": {"database": {"enabled": False}}}}))
    assert "gateway" not in pod_spec(by_kind(objects, "Job")[0])["containers"][0]["args"]


def test_gateway_edge_settings_render_only_when_set():
    """Unset (null, []) they keep the binary's defaults (or config.file); set, they go on
    the gateway container only, in the form the binary reads."""
    assert not GATEWAY_EDGE_ENV & set(env_names(gateway_container({})))
    values = {
        "config": {
            "gateway": {
                "rateLimit": {"callsPerSecond": 0.5, "burst": 10},
                "maxDeadlineMs": 60000,
                "apiKeyTokenTtlMs": 120000,
                "corsAllowedOrigins": ["https://crm.example.com", "http://localhost:5173"],
            }
        }
    }
    objects = render.render_chart(values)
    env = {e["name"]: e.get("value") for e in pod_spec(service_deployments(objects)["gateway"])["containers"][0]["env"]}
    assert env["BRANCHSCORE_GATEWAY__RATE_LIMIT__CALLS_PER_SECOND"] == "0.5"
    assert env["BRANCHSCORE_GATEWAY__RATE_LIMIT__BURST"] == "10"
    assert env["BRANCHSCORE_GATEWAY__MAX_DEADLINE_MS"] == "60000"
    assert env["BRANCHSCORE_GATEWAY__API_KEY_TOKEN_TTL_MS"] == "120000"
    # A list in the environment: figment reads `["a","b"]` as an array of strings.
    assert json.loads(env["BRANCHSCORE_GATEWAY__CORS_ALLOWED_ORIGINS"]) == ["https://crm.example.com", "http://localhost:5173"]
    for component, deployment in service_deployments(objects).items():
        if component != "gateway":
            assert not GATEWAY_EDGE_ENV & set(env_names(pod_spec(deployment)["containers"][0])), component
    for cm in by_kind(objects, "ConfigMap"):
        assert not GATEWAY_EDGE_ENV & set(cm.get("data") or {})
    # Whole numbers stay integers (never 1e+06), large or small.
    for given, rendered in [(1000000, "1000000"), (100, "100"), (2.25, "2.25")]:
        env = env_map(gateway_container({"config": {"gateway": {"rateLimit": {"callsPerSecond": given}}}}))
        assert env["BRANCHSCORE_GATEWAY__RATE_LIMIT__CALLS_PER_SECOND"]["value"] == rendered
        assert "BRANCHSCORE_GATEWAY__RATE_LIMIT__BURST" not in env


def test_gateway_routes_only_enabled_peers():
    """By default the gateway routes all five services behind it, reporting included. A
    disabled service and any peer the gateway does not list get an empty URL: the
    gateway answers their calls UNIMPLEMENTED instead of dialling 127.0.0.1."""
    peers = lambda values: {  # noqa: E731
        e["name"].removeprefix("BRANCHSCORE_PEERS__").lower(): e["value"]
        for e in gateway_container(values)["env"]
        if e["name"].startswith("BRANCHSCORE_PEERS__")
    }
    default = peers({})
    assert default == {s: f"http://{render.RELEASE}-branchscore-{s}:{PORTS[s]}" for s in SERVICES if s != "gateway"}
    assert default["reporting"] == f"http://{render.RELEASE}-branchscore-reporting:50055"
    assert peers({"services": {"reporting": {"enabled": False}}})["reporting"] == ""
    unlisted = peers({"services": {"gateway": {"peers": ["clients", "pipeline"]}}})
    assert unlisted == {
        "clients": f"http://{render.RELEASE}-branchscore-clients:50051",
        "pipeline": f"http://{render.RELEASE}-branchscore-pipeline:50052",
        "feedback": "",
        "kpi": "",
        "reporting": "",
    }


def test_reporting_is_on_by_default_with_its_database_and_peers():
    """reporting runs `serve reporting` on 50055, reads `reporting-database-url`, is
    migrated by the hook Job, calls clients, pipeline, feedback and kpi, and only the
    gateway may call it; its four peers admit it."""
    objects = render.render_chart({})
    deployments = service_deployments(objects)
    assert sorted(deployments) == sorted(SERVICES)
    (container,) = pod_spec(deployments["reporting"])["containers"]
    assert container["args"][-2:] == ["serve", "reporting"]
    env = env_map(container)
    assert env["BRANCHSCORE_REPORTING__SERVER__LISTEN"]["value"] == "0.0.0.0:50055"
    assert env["BRANCHSCORE_REPORTING__DATABASE__URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{render.RELEASE}-branchscore-secrets",
        "key": "reporting-database-url",
    }
    assert env["BRANCHSCORE_REPORTING__DATABASE__MIGRATE_ON_START"]["value"] == "false"
    assert {
        name.removeprefix("BRANCHSCORE_PEERS__").lower(): e["value"] for name, e in env.items() if name.startswith("BRANCHSCORE_PEERS__")
    } == {p: f"http://{render.RELEASE}-branchscore-{p}:{PORTS[p]}" for p in ["clients", "pipeline", "feedback", "kpi"]}
    (secret,) = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    assert secret["stringData"]["reporting-database-url"] == "postgres://branchscore@postgres:5432/branchscore_reporting"
    (hook_secret,) = [s for s in by_kind(objects, "Secret") if is_hook(s)]
    assert hook_secret["stringData"]["reporting-database-url"] == secret["stringData"]["reporting-database-url"]
    (job,) = by_kind(objects, "Job")
    (migrate,) = pod_spec(job)["containers"]
    assert migrate["args"] == ["migrate", *SERVICES]
    assert "BRANCHSCORE_REPORTING__DATABASE__URL" in env_names(migrate)
    policies = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in by_kind(objects, "NetworkPolicy")}

    def grpc_callers(component):
        return sorted(
            c
            for rule in policies[component]["spec"]["ingress"]
            if any(p["port"] == "grpc" for p in rule["ports"])
            for peer in rule["from"]
            for c, d in deployments.items()
            if selector_matches(peer["podSelector"], pod_labels(d))
        )

    assert grpc_callers("reporting") == ["gateway"]
    for peer in ["clients", "pipeline", "feedback", "kpi"]:
        assert "reporting" in grpc_callers(peer), f"{peer} does not admit reporting"
    # Turned off: nothing of it is rendered, and nothing admits it.
    objects = render.render_chart({"services": {"reporting": {"enabled": False}}})
    assert "reporting" not in service_deployments(objects)
    text = yaml.safe_dump_all(objects)
    assert "branchscore-reporting" not in text and "reporting-database-url" not in text
    assert pod_spec(by_kind(objects, "Job")[0])["containers"][0]["args"] == ["migrate", *SERVICES[:-1]]


def test_rs256_key_replaces_the_generated_hs256_secret():
    pem = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n"
    objects = render.render_chart({"secrets": {"jwt": {"rs256PublicKeyPem": pem}}})
    (secret,) = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    assert "jwt-hs256-secret" not in secret["stringData"]
    assert secret["stringData"]["jwt-rs256-public-key.pem"] == pem
    generated = [s for s in by_kind(render.render_chart({}), "Secret") if not is_hook(s)][0]
    assert len(generated["stringData"]["jwt-hs256-secret"]) >= 32


def test_the_signing_key_reaches_the_gateway_and_clients_only():
    public = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n"
    private = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEA\n-----END PRIVATE KEY-----\n"
    objects = render.render_chart({"secrets": {"jwt": {"rs256PublicKeyPem": public, "rs256SigningKeyPem": private}}})
    (secret,) = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    assert secret["stringData"]["jwt-rs256-signing-key.pem"] == private
    given = set()
    for deployment in by_kind(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if env["name"] == "BRANCHSCORE_AUTH__RS256_SIGNING_KEY_PEM":
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert (ref["key"], ref["optional"]) == ("jwt-rs256-signing-key.pem", True)
                    given.add(deployment["metadata"]["labels"]["app.kubernetes.io/component"])
    assert given == {"gateway", "clients"}
    without = render.render_chart({"secrets": {"jwt": {"rs256PublicKeyPem": public}}})
    (secret,) = [s for s in by_kind(without, "Secret") if not is_hook(s)]
    assert "jwt-rs256-signing-key.pem" not in secret["stringData"]


def test_image_digest_wins_over_tag():
    digest = "sha256:" + "a" * 64
    objects = render.render_chart({"image": {"tag": "9.9.9", "digest": digest}})
    for obj in workloads(objects):
        assert pod_spec(obj)["containers"][0]["image"] == f"ghcr.io/branchscore/branchscore@{digest}"


def test_pdb_that_would_block_drains_is_refused():
    with pytest.raises(render.helm_error_type(), match="minAvailable"):
        render.render_chart({"services": {"clients": {"replicas": 2, "pdb": {"minAvailable": 2}}}})
    with pytest.raises(render.helm_error_type(), match="minAvailable"):
        render.render_chart({"services": {"clients": {"autoscaling": {"enabled": True, "minReplicas": 2}, "pdb": {"minAvailable": 3}}}})
    render.render_chart({"services": {"clients": {"replicas": 3, "pdb": {"minAvailable": 2}}}})


def test_short_grace_period_is_refused():
    with pytest.raises(render.helm_error_type(), match="terminationGracePeriodSeconds"):
        render.render_chart({"services": {"clients": {"terminationGracePeriodSeconds": 5, "drainDelayMs": 5000}}})


@pytest.mark.parametrize(
    "bad",
    [
        {"services": {"clinets": {"enabled": True}}},
        {"services": {"clients": {"replicas": -1}}},
        {"services": {"clients": {"peers": ["gateway"]}}},
        {"podSecurityContext": {"runAsNonRoot": False}},
        {"securityContext": {"allowPrivilegeEscalation": True}},
        {"config": {"telemetry": {"logFormat": "xml"}}},
        {"secrets": {"redisUrl": "http://not-redis"}},
        {"image": {"digest": "latest"}},
        {"secrets": {"jwt": {"hs256Secret": "too-short"}}},
        {"secrets": {"jwt": {"rs256PublicKeyPem": "not a pem"}}},
        # The API key file is gone: keys live in the gateway's database.
        {"secrets": {"apiKeys": {"enabled": True}}},
        {"config": {"gateway": {"corsAllowedOrigins": ["https://crm.example.com/"]}}},
        {"config": {"gateway": {"corsAllowedOrigins": ["crm.example.com"]}}},
        {"config": {"gateway": {"corsAllowedOrigins": "https://crm.example.com"}}},
        {"config": {"gateway": {"rateLimit": {"callsPerSecond": 0}}}},
        {"config": {"gateway": {"rateLimit": {"burst": 0}}}},
        {"config": {"gateway": {"maxDeadlineMs": 0}}},
        {"config": {"gateway": {"apiKeyTokenTtlMs": 999}}},
        {"config": {"gateway": {"apiKeysFile": "/etc/keys.toml"}}},
    ],
)
def test_schema_rejects_bad_values(bad):
    with pytest.raises(render.helm_error_type()):
        render.validate_values(bad)


def test_values_schema_is_a_valid_draft7_schema_and_matches_the_defaults():
    import json

    import jsonschema

    schema = json.loads((render.CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((render.CHART / "values.yaml").read_text()))
    chart = yaml.safe_load((render.CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={render.KUBE_VERSIONS[0]}.0-0", "validate against the oldest supported version"


def test_lint_is_clean_on_the_oldest_supported_kubernetes():
    report = render.lint({})
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


# ----------------------------------------------------------------------------- kustomize


@pytest.fixture(scope="module", params=render.KUSTOMIZATIONS)
def kustomized(request):
    return request.param, render.kustomize(request.param)


def test_kustomize_branchscore_pods_follow_the_same_rules(kustomized):
    _, objects = kustomized
    branchscore = [o for o in workloads(objects) if render.is_branchscore_workload(o)]
    assert branchscore
    for obj in branchscore:
        assert_pod_hardened(obj)
    for deployment in by_kind(branchscore, "Deployment"):
        (container,) = pod_spec(deployment)["containers"]
        port = container["ports"][0]["containerPort"]
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[kind]["grpc"]["port"] == port


def test_kustomize_every_pod_runs_as_non_root(kustomized):
    """Postgres, Redis and the collector of the dev overlay too (namespace is PSS restricted)."""
    _, objects = kustomized
    for obj in workloads(objects):
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True, render.describe(obj)
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and "ALL" in sc["capabilities"]["drop"], render.describe(obj)
            if obj["kind"] != "Job":
                assert container.get("readinessProbe"), f"{render.describe(obj)}: no readiness probe"


def test_kustomize_env_names_only_the_service_it_runs(kustomized):
    _, objects = kustomized
    for deployment in by_kind(objects, "Deployment"):
        if not render.is_branchscore_workload(deployment):
            continue
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        (container,) = pod_spec(deployment)["containers"]
        for env in env_names(container):
            match = re.match(r"^BRANCHSCORE_([A-Z]+)__", env)
            if match and match.group(1) in {s.upper() for s in SERVICES}:
                assert match.group(1) == component.upper(), f"{component} sets {env}"
    for cm in by_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            match = re.match(r"^BRANCHSCORE_([A-Z]+)__", key)
            assert not (match and match.group(1) in {s.upper() for s in SERVICES} | {"PEERS"}), key


def kustomize_services(objects) -> dict[str, dict]:
    """component -> Deployment of the branchscore services in a kustomize tree."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in by_kind(objects, "Deployment")
        if render.is_branchscore_workload(d)
    }


def env_map(container) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def peer_env(deployment) -> dict[str, str]:
    """peer -> URL from the BRANCHSCORE_PEERS__* variables of a Deployment (an empty URL:
    set, but not routed)."""
    (container,) = pod_spec(deployment)["containers"]
    return {
        name.removeprefix("BRANCHSCORE_PEERS__").lower(): env["value"]
        for name, env in env_map(container).items()
        if name.startswith("BRANCHSCORE_PEERS__") and "__" not in name.removeprefix("BRANCHSCORE_PEERS__")
    }


def test_kustomize_services_mirror_the_chart(kustomized):
    """Port, command, database, peers and Service of every service as the chart's defaults
    describe it. Every service calls exactly its chart peers that are deployed here; the
    gateway also sets its chart peers that are not deployed, empty (not routed), as the
    chart does: unset, the binary would route them to 127.0.0.1."""
    _, objects = kustomized
    chart = render.chart_defaults()["services"]
    deployments = kustomize_services(objects)
    assert sorted(deployments) == sorted(SERVICES), f"k8s/ deploys {sorted(deployments)}"
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    for component, deployment in deployments.items():
        assert component in SERVICES, f"unknown service {component}"
        port = chart[component]["port"]
        (container,) = pod_spec(deployment)["containers"]
        env = env_map(container)
        section = component.upper()
        assert container["name"] == component and container["args"] == ["serve", component]
        assert container["ports"][0] == {"name": "grpc", "containerPort": port, "protocol": "TCP"}, component
        assert env[f"BRANCHSCORE_{section}__SERVER__LISTEN"]["value"] == f"0.0.0.0:{port}"
        drain = int(env[f"BRANCHSCORE_{section}__SERVER__SHUTDOWN_DRAIN_DELAY_MS"]["value"])
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] * 1000 > drain + 10_000, component
        has_db = chart[component]["database"]["enabled"]
        assert (f"BRANCHSCORE_{section}__DATABASE__URL" in env) == has_db, component
        if has_db:
            ref = env[f"BRANCHSCORE_{section}__DATABASE__URL"]["valueFrom"]["secretKeyRef"]
            assert ref["key"] == f"{component}-database-url"
            # The migration Job migrates; a pod migrating on start would race it.
            assert env[f"BRANCHSCORE_{section}__DATABASE__MIGRATE_ON_START"]["value"] == "false"
        if component == "feedback":
            ref = env["BRANCHSCORE_FEEDBACK__LINKS__SECRET"]["valueFrom"]["secretKeyRef"]
            assert ref["key"] == "feedback-link-secret"
        peers = peer_env(deployment)
        wanted = {p for p in chart[component]["peers"] if p in deployments and p != component}
        routed = {peer for peer, url in peers.items() if url}
        assert routed == wanted, f"{component}: peers {sorted(routed)} != {sorted(wanted)}"
        if component == "gateway":
            assert set(peers) == set(SERVICES) - {"gateway"}, f"gateway peers {sorted(peers)}"
        else:
            assert set(peers) == routed, f"{component}: empty peer URLs {peers}"
        for peer in routed:
            url = peers[peer]
            assert url == f"http://branchscore-{peer}:{chart[peer]['port']}", f"{component} -> {url}"
        svc = services[f"branchscore-{component}"]
        assert selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(deployment))
        matched = [c for c, d in deployments.items() if selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(d))]
        assert matched == [component]
        grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
        assert grpc["port"] == port and grpc["targetPort"] == "grpc" and grpc["appProtocol"] == "kubernetes.io/h2c"


def test_kustomize_network_policies_admit_the_gateway_and_the_callers(kustomized):
    """One policy per service. The gateway takes gRPC from anyone; every other service
    exactly from the gateway and the services whose BRANCHSCORE_PEERS__* name it, never
    from an open rule. Metrics from the namespaces only."""
    _, objects = kustomized
    deployments = kustomize_services(objects)
    policies = by_kind(objects, "NetworkPolicy")
    assert len(policies) == len(deployments)
    covered = []
    for policy in policies:
        selected = [c for c, d in deployments.items() if selector_matches(policy["spec"]["podSelector"], pod_labels(d))]
        assert len(selected) == 1, f"{render.describe(policy)} selects {selected}"
        component = selected[0]
        covered.append(component)
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        rules = policy["spec"].get("ingress") or []
        for rule in rules:
            assert rule.get("ports"), f"{component}: an ingress rule without ports opens every port"
        grpc_rules = [r for r in rules if any(p["port"] == "grpc" for p in r["ports"])]
        metrics_rules = [r for r in rules if any(p["port"] == "metrics" for p in r["ports"])]
        assert len(metrics_rules) == 1 and metrics_rules[0]["from"] == [{"namespaceSelector": {}}], component
        if component == "gateway":
            assert len(grpc_rules) == 1 and not grpc_rules[0].get("from"), "the gateway is reachable from outside"
            continue
        expected = sorted({"gateway"} | {c for c, d in deployments.items() if peer_env(d).get(component)})
        callers = set()
        for rule in grpc_rules:
            assert rule.get("from"), f"{component}: an ingress rule without 'from' admits everyone"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, f"{component}: only pods of this namespace may call it, got {peer}"
                hits = {c for c, d in deployments.items() if selector_matches(peer["podSelector"], pod_labels(d))}
                assert hits, f"{component}: a caller selector matches no service"
                callers |= hits
        assert sorted(callers) == expected, f"{component}: callers {sorted(callers)} != {expected}"
    assert sorted(covered) == sorted(deployments)


def test_kustomize_every_service_has_a_pdb(kustomized):
    _, objects = kustomized
    deployments = kustomize_services(objects)
    covered = []
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        hits = [c for c, d in deployments.items() if selector_matches(pdb["spec"]["selector"], pod_labels(d))]
        assert len(hits) == 1, f"{render.describe(pdb)} selects {hits}"
        assert pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"]
        covered.extend(hits)
    assert sorted(covered) == sorted(deployments)


def test_kustomize_migration_job_migrates_every_database(kustomized):
    """`branchscore migrate` with every service that has a database, in the chart's order,
    from the same Secret keys the services read."""
    _, objects = kustomized
    deployments = kustomize_services(objects)
    (job,) = by_kind(objects, "Job")
    (container,) = pod_spec(job)["containers"]
    with_db = [s for s in SERVICES if s in deployments and f"BRANCHSCORE_{s.upper()}__DATABASE__URL" in env_names(pod_spec(deployments[s])["containers"][0])]
    assert container["args"] == ["migrate", *with_db]
    env = env_map(container)
    for svc in with_db:
        ref = env[f"BRANCHSCORE_{svc.upper()}__DATABASE__URL"]["valueFrom"]["secretKeyRef"]
        service_ref = env_map(pod_spec(deployments[svc])["containers"][0])[f"BRANCHSCORE_{svc.upper()}__DATABASE__URL"]["valueFrom"]["secretKeyRef"]
        assert ref == service_ref, svc
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_kustomize_dev_secrets_are_long_enough():
    """The binary refuses an HS256 secret or a survey-link key shorter than 32 bytes."""
    import base64

    objects = render.kustomize("overlays/dev")
    (secret,) = [s for s in by_kind(objects, "Secret") if s["metadata"]["name"].startswith("branchscore-secrets")]
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    for key in ("jwt-hs256-secret", "feedback-link-secret"):
        assert len(data[key]) >= 32, f"{key} is shorter than 32 bytes"


def test_kustomize_secret_and_config_references_resolve(kustomized):
    name, objects = kustomized
    secrets = {s["metadata"]["name"]: set(s.get("data") or {}) | set(s.get("stringData") or {}) for s in by_kind(objects, "Secret")}
    configmaps = {c["metadata"]["name"] for c in by_kind(objects, "ConfigMap")}
    for obj in workloads(objects):
        spec = pod_spec(obj)
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                if "secretRef" in source and name != "base":
                    assert source["secretRef"]["name"] in secrets
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert not ref.get("optional"), f"{render.describe(obj)}: {env['name']} is optional"
                if ref and name != "base":  # the base leaves the Secret to the overlay
                    assert ref["name"] in secrets, f"{render.describe(obj)} -> missing Secret {ref['name']}"
                    assert ref["key"] in secrets[ref["name"]], f"{render.describe(obj)} -> missing key {ref['key']}"
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps


# ----------------------------------------------------------------------------- image


def test_dockerfile_shape():
    text = (render.ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 3, "multi-stage build expected"
    builder = re.search(r"^FROM .* AS builder$(.*?)^FROM ", text, re.MULTILINE | re.DOTALL | re.IGNORECASE).group(1)
    assert "cargo chef cook" in builder and builder.index("cargo chef cook") < builder.index("COPY . ."), (
        "dependencies must be built before the sources are copied"
    )
    final = text[text.rindex("\nFROM ") :]
    assert "distroless" in stages[-1][0] or "slim" in stages[-1][0]
    user = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("0", "root"), "runtime must not run as root"
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/branchscore"\]', final, re.MULTILINE)
    assert re.search(r'^CMD \["serve"\]', final, re.MULTILINE)
    assert "--locked" in text
    ignored = (render.ROOT / ".dockerignore").read_text().split()
    assert "target/" in ignored and ".git/" in ignored


def test_chart_readme_lists_every_documented_value():
    import values_table

    assert values_table.render_table() in (render.CHART / "README.md").read_text(), (
        "helm/branchscore/README.md is stale: run deploy/values_table.py --write"
    )


def test_feedback_signs_survey_links_with_a_key_from_the_secret():
    objects = render.render_chart({})
    (secret,) = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    generated = secret["stringData"]["feedback-link-secret"]
    assert len(generated) >= 32
    (container,) = pod_spec(service_deployments(objects)["feedback"])["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["BRANCHSCORE_FEEDBACK__LINKS__SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "feedback-link-secret"
    given = "k" * 40
    objects = render.render_chart({"secrets": {"feedbackLinkSecret": given}})
    (secret,) = [s for s in by_kind(objects, "Secret") if not is_hook(s)]
    assert secret["stringData"]["feedback-link-secret"] == given
