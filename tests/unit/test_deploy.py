"""The Dockerfile and deploy/: parsed and checked, since no Docker engine or cluster runs here.

Every ``revoker_*`` metric (and every label selected on it) that an alert, a dashboard or
the operations guide names must be one the service really exposes, so none can drift.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from revoker import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC_RE = re.compile(r"\b(revoker_[a-z0-9_]+)(\{[^}]*\})?")
SELECTOR_LABEL_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
SCRAPE_LABELS = {"job", "instance"}
COMPILERS = ("gcc", "g++", "clang", "build-essential", "cc ", "make ", "cargo", "rustc")


# -- what the service exposes ------------------------------------------------------------------

def exposed() -> dict[str, set[str]]:
    """Every sample name the service exposes, with the labels it carries."""
    names: dict[str, set[str]] = {}
    for obj in vars(metrics).values():
        if isinstance(obj, metrics.LocalHistogram):  # the hot path's, exposed by a collector
            for family in metrics.HistogramCollector([obj]).describe():
                assert family.type == "histogram"
                names[family.name + "_bucket"] = set(obj.labelnames) | {"le"}
                names[family.name + "_sum"] = set(obj.labelnames)
                names[family.name + "_count"] = set(obj.labelnames)
            continue
        if not isinstance(obj, MetricWrapperBase):
            continue
        labels = set(getattr(obj, "_labelnames", ()))
        for family in obj.describe():
            if family.type == "counter":
                names[family.name + "_total"] = labels
            elif family.type == "histogram":
                names[family.name + "_bucket"] = labels | {"le"}
                names[family.name + "_sum"] = labels
                names[family.name + "_count"] = labels
            else:
                names[family.name] = labels
    return names


def test_the_issue_metrics_are_exposed() -> None:
    names = exposed()
    for name in ("revoker_http_requests_total", "revoker_http_request_duration_seconds_bucket",
                 "revoker_checks_total", "revoker_revocations_total",
                 "revoker_store_operation_duration_seconds_bucket", "revoker_store_errors_total",
                 "revoker_fail_open_total", "revoker_token_rejections_total",
                 "revoker_revocations_active", "revoker_build_info"):
        assert name in names, name
    assert names["revoker_http_requests_total"] == {"route", "method", "status"}
    assert names["revoker_revocations_total"] == {"kind", "source"}
    forbidden = {"jti", "sub", "sid", "token", "key", "value", "client_id"}
    assert not any(labels & forbidden for labels in names.values())


# -- every YAML and JSON under deploy/ ---------------------------------------------------------

def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


def load(path: Path) -> list[Any]:
    text = path.read_text()
    if path.suffix == ".json":
        return [json.loads(text)]
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def test_deploy_has_the_expected_files() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in deploy_files()}
    assert {"docker-compose.yaml", "prometheus/alerts.yaml", "prometheus/prometheus.yml",
            "grafana/revoker.json", "kubernetes/deployment.yaml"} <= names


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_metric_used_under_deploy_is_exposed(path: Path) -> None:
    names = exposed()
    for text in strings(load(path)):
        for name, selector in METRIC_RE.findall(text):
            assert name in names, f"{path.name} uses {name}, which revoker does not expose"
            used = set(SELECTOR_LABEL_RE.findall(selector)) - SCRAPE_LABELS
            assert used <= names[name], f"{path.name}: {name} has no label {used - names[name]}"


def test_the_operations_guide_documents_exactly_the_exposed_metrics() -> None:
    text = (ROOT / "README.md").read_text().split("### Metrics", 1)[1].split("\n### ", 1)[0]
    documented = {name for name, _ in METRIC_RE.findall(text)}
    names = exposed()
    unknown = {n for n in documented if n not in names and n + "_bucket" not in names}
    assert unknown == set(), "documented metrics that do not exist"
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    mentioned = {re.sub(r"_(bucket|sum|count)$", "", n) for n in documented}
    assert families - mentioned == set(), "exposed metrics missing from the README"


# -- Prometheus and Grafana ----------------------------------------------------------------------

def test_alerts_cover_the_failure_modes() -> None:
    (rules_doc,) = load(DEPLOY / "prometheus" / "alerts.yaml")
    rules = {r["alert"]: r["expr"] for g in rules_doc["groups"] for r in g["rules"]}
    assert "revoker_store_errors_total" in rules["RevokerStoreDown"]
    assert 'status=~"5.."' in rules["RevokerHighErrorRate"]
    assert "revoker_fail_open_total" in rules["RevokerFailOpenUsed"]
    assert "histogram_quantile(0.99" in rules["RevokerCheckLatencyP99High"]
    assert "redis_evicted_keys_total" in rules["RedisEvictedKeys"]
    assert "> 0" in rules["RedisEvictedKeys"]


def test_the_operator_rule_is_the_same_as_alerts_yaml() -> None:
    (alerts,) = load(DEPLOY / "prometheus" / "alerts.yaml")
    (rule,) = load(DEPLOY / "kubernetes" / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule" and rule["spec"] == alerts


def test_prometheus_scrapes_revoker_and_loads_the_rules() -> None:
    (config,) = load(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["revoker"]["metrics_path"] == "/metrics"
    assert jobs["revoker"]["static_configs"][0]["targets"] == ["revoker:8080"]
    assert "/etc/prometheus/alerts.yaml" in config["rule_files"]


def test_grafana_dashboard_panels_all_query_revoker() -> None:
    (dashboard,) = load(DEPLOY / "grafana" / "revoker.json")
    assert dashboard["uid"] == "revoker" and dashboard["panels"]
    for panel in dashboard["panels"]:
        exprs = [target["expr"] for target in panel["targets"]]
        assert exprs and all(METRIC_RE.search(e) for e in exprs), panel["title"]


# -- docker compose ------------------------------------------------------------------------------

def test_compose_runs_redis_safely_with_revoker_and_prometheus() -> None:
    (compose,) = load(DEPLOY / "docker-compose.yaml")
    services = compose["services"]
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd
    revoker = services["revoker"]
    assert revoker["environment"]["REVOKER_STORE_URL"].startswith("redis://redis:")
    assert revoker["build"]["dockerfile"] == "Dockerfile"
    assert (DEPLOY / revoker["build"]["context"] / "Dockerfile").is_file()
    assert revoker["read_only"] is True and "/tmp" in revoker["tmpfs"]
    mounts = services["prometheus"]["volumes"]
    for mount in mounts:
        assert (DEPLOY / mount.split(":")[0]).is_file(), mount


# -- Kubernetes ----------------------------------------------------------------------------------

def k8s() -> dict[str, dict[str, Any]]:
    docs = [doc for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
            for doc in load(path)]
    return {doc["kind"]: doc for doc in docs}


def test_kubernetes_has_every_object_and_kustomize_lists_every_file() -> None:
    objects = k8s()
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "NetworkPolicy", "ServiceMonitor", "Secret", "PrometheusRule"} <= set(objects)
    listed = set(objects["Kustomization"]["resources"])
    files = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files


def test_deployment_probes_resources_security_and_secrets() -> None:
    objects = k8s()
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    env = {e["name"]: e for e in container["env"]}
    assert env["REVOKER_HOST"]["value"] == "0.0.0.0"
    secret_name = objects["Secret"]["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == secret_name
    keys_path = env["REVOKER_API_KEYS_FILE"]["value"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "api-keys")
    assert keys_path.startswith(mount["mountPath"] + "/")
    assert "REVOKER_API_KEYS" not in env, "API keys come from the Secret, not plain env"
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), \
        "a writable /tmp for the multiprocess metrics directory"
    shutdown_s = float(env["REVOKER_SHUTDOWN_TIMEOUT"]["value"])
    assert pod["terminationGracePeriodSeconds"] > shutdown_s + 5


def test_service_pdb_hpa_and_monitor_point_at_the_deployment() -> None:
    objects = k8s()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for c in objects["Deployment"]["spec"]["template"]["spec"][
        "containers"] for p in c["ports"]}
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] in port_names
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() \
        <= labels.items()
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment",
                                                objects["Deployment"]["metadata"]["name"])
    assert objects["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"].items() \
        <= labels.items()
    (endpoint,) = objects["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in port_names


# -- the Dockerfile --------------------------------------------------------------------------------

def dockerfile() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """(ARG defaults before the first FROM, stages as lists of (INSTRUCTION, arguments))."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if not stages:
            if instruction == "ARG" and "=" in rest:
                name, _, default = rest.partition("=")
                args[name.strip()] = default.strip()
            continue
        stages[-1].append((instruction, rest.strip()))
    return args, stages


def resolve(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def dockerfile_uid() -> int:
    _, stages = dockerfile()
    users = [rest for instruction, rest in stages[-1] if instruction == "USER"]
    return int(users[-1].split(":")[0])


def test_dockerfile_is_multi_stage_slim_non_root_without_compilers() -> None:
    args, stages = dockerfile()
    assert len(stages) >= 2, "multi-stage"
    final = stages[-1]
    base = resolve(final[0][1], args).split()[0]
    assert "-slim" in base, f"final base image {base} is not a slim image"
    assert any(ins == "COPY" and "--from=" in rest for ins, rest in final)
    users = [rest for ins, rest in final if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "non-root USER"
    for ins, rest in final:
        if ins == "RUN":
            assert not any(c in rest + " " for c in COMPILERS), f"compiler in final stage: {rest}"
    build_runs = " ".join(rest for stage in stages[:-1] for ins, rest in stage if ins == "RUN")
    assert "pip install" in build_runs


def test_dockerfile_healthcheck_port_and_host() -> None:
    _, stages = dockerfile()
    final = dict((ins, rest) for ins, rest in stages[-1] if ins != "ENV")
    envs = " ".join(rest for ins, rest in stages[-1] if ins == "ENV")
    assert "/healthz" in final["HEALTHCHECK"] and "CMD" in final["HEALTHCHECK"]
    assert final["EXPOSE"].split() == ["8080"]
    assert re.search(r"\bREVOKER_HOST=0\.0\.0\.0\b", envs)
    assert re.search(r"\bREVOKER_PORT=8080\b", envs)
    assert json.loads(final["ENTRYPOINT"]) == ["revoker"]
    assert json.loads(final["CMD"]) == ["serve"]


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in lines and "!revoker/" in lines and "!pyproject.toml" in lines


# -- Envoy: no binary here, so the bootstrap is checked against Envoy's own v3 schema ------------

def envoy_bootstrap() -> Any:
    """deploy/envoy/envoy.yaml parsed into Envoy's Bootstrap message, strictly.

    The protos come from the ``xds-protos`` package (generated from Envoy's data-plane API).
    Importing the typed_config modules registers their types, so each ``@type`` resolves;
    an unknown field anywhere, or a wrong type, fails the parse as it would fail Envoy.
    """
    pytest.importorskip("envoy.config.bootstrap.v3.bootstrap_pb2",
                        reason="Envoy's protos are not installed (pip install xds-protos, "
                               "in the dev extra)")
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2  # noqa: F401
    from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
    from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
        http_connection_manager_pb2,
    )
    from google.protobuf import json_format

    (config,) = load(DEPLOY / "envoy" / "envoy.yaml")
    return json_format.ParseDict(config, bootstrap_pb2.Bootstrap())


def deprecated_uses(message: Any, path: str = "") -> Iterator[str]:
    """Every field or enum value set in ``message`` (recursively, into Any) that Envoy's
    schema marks deprecated: such a config still loads today and breaks on an upgrade."""
    from google.protobuf import any_pb2, symbol_database

    if isinstance(message, any_pb2.Any):
        type_name = message.TypeName()
        inner = symbol_database.Default().GetSymbol(type_name)()
        assert message.Unpack(inner), type_name
        yield from deprecated_uses(inner, f"{path}<{type_name}>")
        return
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        if field.GetOptions().deprecated:
            yield where
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            # a map: what can be deprecated is in its values
            field, values = field.message_type.fields_by_name["value"], list(value.values())
        elif (field.is_repeated if hasattr(field, "is_repeated")
              else field.label == field.LABEL_REPEATED):
            values = list(value)
        else:
            values = [value]
        for item in values:
            if field.message_type is not None:
                yield from deprecated_uses(item, where)
            elif field.enum_type is not None:
                enum_value = field.enum_type.values_by_number[item]
                if enum_value.GetOptions().deprecated:
                    yield f"{where}={enum_value.name}"


def envoy_filter(bootstrap: Any, name: str) -> Any:
    from envoy.extensions.filters.network.http_connection_manager.v3 import (
        http_connection_manager_pb2,
    )

    (listener,) = bootstrap.static_resources.listeners
    (chain,) = listener.filter_chains
    (network,) = chain.filters
    manager = http_connection_manager_pb2.HttpConnectionManager()
    assert network.typed_config.Unpack(manager)
    return next(f for f in manager.http_filters if f.name == name), manager


def test_envoy_config_fits_envoys_v3_schema_without_deprecated_fields() -> None:
    bootstrap = envoy_bootstrap()
    assert list(deprecated_uses(bootstrap)) == []
    text = (DEPLOY / "envoy" / "envoy.yaml").read_text()
    assert re.search(r"Written for Envoy 1\.\d+", text), "name the Envoy version targeted"


def test_envoy_asks_revoker_and_refuses_when_it_cannot() -> None:
    from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2

    bootstrap = envoy_bootstrap()
    authz_filter, manager = envoy_filter(bootstrap, "envoy.filters.http.ext_authz")
    assert manager.http_filters[-1].name == "envoy.filters.http.router"
    authz = ext_authz_pb2.ExtAuthz()
    assert authz_filter.typed_config.Unpack(authz)
    assert authz.failure_mode_allow is False
    assert authz.status_on_error.code == 503
    assert [p.exact for p in authz.allowed_headers.patterns] == ["authorization"]
    service = authz.http_service
    assert service.path_prefix == "/v1/authz"
    assert [h.key for h in service.authorization_request.headers_to_add] == ["X-Revoker-Key"]
    response = service.authorization_response
    assert {p.exact for p in response.allowed_upstream_headers.patterns} == {
        "x-auth-subject", "x-auth-jti"}
    assert {"www-authenticate", "retry-after"} <= {
        p.exact for p in response.allowed_client_headers.patterns}
    clusters = {c.name for c in bootstrap.static_resources.clusters}
    assert service.server_uri.cluster in clusters
    assert not bootstrap.HasField("admin"), "no admin interface"
