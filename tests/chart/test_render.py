"""What `helm template` renders for the default values and each file in charts/flashsale/ci."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.chart.conftest import CHART, NAMESPACE, RELEASE, Render, Rendered, env_of, name, pod_spec

SECRET = f"{RELEASE}-flashsale"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}
OPERATOR_RULES = [
    {
        "apiGroups": ["flashsale.dev"],
        "resources": ["flashsales"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": ["flashsale.dev"], "resources": ["flashsales/status"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "resourceNames": [name("api"), name("worker")],
        "verbs": ["get", "patch"],
    },
]


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return [o for o in rendered.objects if o["kind"] in WORKLOAD_KINDS]


def container(obj: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return pod_spec(obj)["containers"][index]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def default(render: Render) -> Rendered:
    return render()


def test_default_values_render_the_whole_platform(default: Rendered) -> None:
    assert default.names() == sorted(
        [
            f"ServiceAccount/{name('operator')}",
            f"Role/{name('operator')}",
            f"RoleBinding/{name('operator')}",
            f"Service/{name('api')}",
            f"Service/{name('operator')}",
            f"Service/{name('redis')}",
            f"Service/{name('postgresql')}",
            f"Deployment/{name('api')}",
            f"Deployment/{name('worker')}",
            f"Deployment/{name('operator')}",
            f"StatefulSet/{name('redis')}",
            f"StatefulSet/{name('postgresql')}",
            f"CronJob/{name('reaper')}",
            f"CronJob/{name('sweeper')}",
            f"Job/{name('migrate')}",
            f"Secret/{SECRET}",
            f"Pod/{name('test-readyz')}",
        ]
    )
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in default.objects)
    # The CRD is installed from crds/, never templated.
    assert not default.all("CustomResourceDefinition")


@pytest.mark.parametrize(
    "values", [(), *[(p.name,) for p in sorted((CHART / "ci").glob("*.yaml"))]]
)
def test_every_pod_is_locked_down(render: Render, values: tuple[str, ...]) -> None:
    rendered = render(*values)
    assert workloads(rendered)
    for obj in workloads(rendered):
        spec = pod_spec(obj)
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is (obj["metadata"]["name"] == name("operator"))
        mounts_tmp = set()
        for box in spec["containers"]:
            ctx = box["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert box["resources"]["requests"]["cpu"], where
            assert box["resources"]["requests"]["memory"], where
            mounts_tmp |= {
                m["name"] for m in box.get("volumeMounts", []) if m["mountPath"] == "/tmp"
            }
        if obj["kind"] != "Pod":  # the test pod only reads one URL
            assert mounts_tmp == {"tmp"}, f"{where} has no writable /tmp"
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes["tmp"], where


def test_flashsale_containers_run_the_image_as_its_user(default: Rendered) -> None:
    dockerfile = (CHART.parents[1] / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    for obj in workloads(default):
        box = container(obj)
        if box["image"].startswith("flashsale:"):
            assert box["image"] == "flashsale:0.1.0"  # appVersion, never a floating tag
            assert pod_spec(obj)["securityContext"]["runAsUser"] == 10001


def test_api_runs_the_server_with_probes_and_a_service(default: Rendered) -> None:
    api = default.get("Deployment", name("api"))
    box = container(api)
    assert box["args"] == ["api", "--host", "0.0.0.0", "--port", "8000", "--workers", "1"]
    assert box["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert box["ports"] == [{"name": "http", "containerPort": 8000}]
    assert api["spec"]["replicas"] == 1
    env = env_of(box)
    assert env["FLASHSALE_REDIS_URL"] == (SECRET, "redis-url")
    assert env["FLASHSALE_DATABASE_URL"] == (SECRET, "database-url")
    assert env["FLASHSALE_JWT_SECRET"] == (SECRET, "jwt-secret")
    assert env["FLASHSALE_DATA_DIR"].startswith("/tmp/")
    assert "FLASHSALE_BROKER_URL" not in env  # the broker defaults to the Redis URL
    service = default.get("Service", name("api"))
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert default.maybe("Ingress", name("api")) is None
    assert default.maybe("HorizontalPodAutoscaler", name("api")) is None


def test_only_the_api_gets_the_signing_key(default: Rendered) -> None:
    for obj in workloads(default):
        for box in pod_spec(obj)["containers"]:
            has_key = "FLASHSALE_JWT_SECRET" in env_of(box)
            assert has_key is (obj["metadata"]["name"] == name("api")), obj["metadata"]["name"]


def test_worker_persists_orders_at_the_configured_pace(default: Rendered) -> None:
    box = container(default.get("Deployment", name("worker")))
    assert box["args"] == ["worker", "--concurrency", "4"]
    assert env_of(box)["FLASHSALE_ORDERS_PER_SECOND"] == "500"


def test_operator_is_one_recreated_replica_with_its_settings(default: Rendered) -> None:
    operator = default.get("Deployment", name("operator"))
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod_spec(operator)
    assert spec["serviceAccountName"] == name("operator")
    box = spec["containers"][0]
    assert box["args"] == [
        "operator",
        "--namespace",
        NAMESPACE,
        "--liveness",
        "http://0.0.0.0:8080/healthz",
    ]
    assert box["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080} in box["ports"]
    assert {"name": "metrics", "containerPort": 9090} in box["ports"]
    env = env_of(box)
    assert env["FLASHSALE_OPERATOR_NAMESPACE"] == NAMESPACE
    assert env["FLASHSALE_OPERATOR_API_DEPLOYMENT"] == name("api")
    assert env["FLASHSALE_OPERATOR_WORKER_DEPLOYMENT"] == name("worker")
    assert env["FLASHSALE_OPERATOR_API_BASELINE_REPLICAS"] == "1"
    assert env["FLASHSALE_OPERATOR_WORKER_BASELINE_REPLICAS"] == "1"
    assert env["FLASHSALE_OPERATOR_LEAD_SECONDS"] == "300"
    assert env["FLASHSALE_OPERATOR_REFRESH_SECONDS"] == "5"
    assert env["FLASHSALE_OPERATOR_METRICS_PORT"] == "9090"
    assert env["FLASHSALE_REDIS_URL"] == (SECRET, "redis-url")
    metrics = default.get("Service", name("operator"))
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]


def test_operator_role_allows_exactly_what_the_operator_calls(default: Rendered) -> None:
    role = default.get("Role", name("operator"))
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == OPERATOR_RULES
    assert not default.all("ClusterRole") and not default.all("ClusterRoleBinding")
    binding = default.get("RoleBinding", name("operator"))
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name("operator"),
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": name("operator"), "namespace": NAMESPACE}
    ]
    account = default.get("ServiceAccount", name("operator"))
    assert account["automountServiceAccountToken"] is False  # only the operator pod mounts it


@pytest.mark.parametrize(
    ("component", "args"), [("reaper", ["reap"]), ("sweeper", ["sweep", "--older-than", "30"])]
)
def test_cronjobs_run_one_command_at_a_time(
    default: Rendered, component: str, args: list[str]
) -> None:
    cron = default.get("CronJob", name(component))
    assert cron["spec"]["schedule"] == "* * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    box = container(cron)
    assert box["args"] == args
    assert "command" not in box  # the image's entry point, `flashsale`
    assert pod_spec(cron)["restartPolicy"] == "Never"
    assert env_of(box)["FLASHSALE_DATABASE_URL"] == (SECRET, "database-url")


def test_migration_is_a_hook_after_the_bundled_database_exists(default: Rendered) -> None:
    job = default.get("Job", name("migrate"))
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert container(job)["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_secret_is_created_first_and_holds_generated_keys(default: Rendered) -> None:
    secret = default.get("Secret", SECRET)
    annotations = secret["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < int(
        default.get("Job", name("migrate"))["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    data = secret["stringData"]
    assert set(data) == {
        "jwt-secret",
        "redis-password",
        "redis-url",
        "postgres-password",
        "database-url",
    }
    assert len(data["jwt-secret"]) >= 32
    assert data["redis-url"] == f"redis://:{data['redis-password']}@{name('redis')}:6379/0"
    assert data["database-url"] == (
        f"postgresql://flashsale:{data['postgres-password']}@{name('postgresql')}:5432/flashsale"
    )


def test_bundled_redis_keeps_an_append_only_file_and_never_evicts(default: Rendered) -> None:
    redis = default.get("StatefulSet", name("redis"))
    box = container(redis)
    command = " ".join(box["args"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert "REDIS_PASSWORD" in command and "requirepass" in command
    assert env_of(box)["REDIS_PASSWORD"] == (SECRET, "redis-password")
    assert pod_spec(redis)["securityContext"]["runAsUser"] == 999
    claim = redis["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert {"name": "data", "mountPath": "/data"} in box["volumeMounts"]


def test_bundled_postgresql_runs_as_postgres_with_a_volume(default: Rendered) -> None:
    pg = default.get("StatefulSet", name("postgresql"))
    box = container(pg)
    assert pod_spec(pg)["securityContext"]["runAsUser"] == 70
    env = env_of(box)
    assert env["POSTGRES_PASSWORD"] == (SECRET, "postgres-password")
    assert env["PGDATA"].startswith("/var/lib/postgresql/data/")
    assert box["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    mounts = {m["mountPath"] for m in box["volumeMounts"]}
    assert mounts == {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"}
    assert (
        pg["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    )


def test_helm_test_pod_calls_readyz_through_the_service(default: Rendered) -> None:
    pod = default.get("Pod", name("test-readyz"))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = container(pod)["args"][0]
    assert f"http://{name('api')}:80/readyz" in script
    assert "sys.exit(0 if response.status == 200 else 1)" in script


def test_external_databases_replace_the_bundled_ones(render: Render) -> None:
    rendered = render("external-values.yaml")
    assert not rendered.all("StatefulSet")
    assert rendered.maybe("Service", name("redis")) is None
    assert rendered.maybe("Service", name("postgresql")) is None
    env = env_of(container(rendered.get("Deployment", name("api"))))
    assert env["FLASHSALE_DATABASE_URL"] == ("shop-database", "url")
    assert env["FLASHSALE_REDIS_URL"] == (SECRET, "redis-url")
    assert env["FLASHSALE_BROKER_URL"] == (SECRET, "broker-url")
    data = rendered.get("Secret", SECRET)["stringData"]
    assert data == {
        "jwt-secret": data["jwt-secret"],
        "redis-url": "redis://:s3cret@redis.shared.svc:6379/2",
        "broker-url": "redis://:s3cret@broker.shared.svc:6379/0",
    }
    # No database comes with the release, so the schema is migrated before anything starts.
    hook = rendered.get("Job", name("migrate"))["metadata"]["annotations"]["helm.sh/hook"]
    assert hook == "pre-install,pre-upgrade"


def test_ingress_carries_the_nginx_rate_limit(render: Render) -> None:
    ingress = render("ingress-values.yaml").get("Ingress", name("api"))
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == "50"
    assert annotations["nginx.ingress.kubernetes.io/limit-burst-multiplier"] == "3"
    assert annotations["nginx.ingress.kubernetes.io/limit-connections"] == "10"
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "8k"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-example-com-tls"}]
    rule = spec["rules"][0]
    assert rule["host"] == "shop.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": name("api"),
        "port": {"name": "http"},
    }


def test_existing_jwt_secret_is_used_and_none_generated(render: Render) -> None:
    rendered = render("jwt-existing-values.yaml")
    env = env_of(container(rendered.get("Deployment", name("api"))))
    assert env["FLASHSALE_JWT_SECRET"] == ("shop-jwt", "signing-key")
    assert env["FLASHSALE_HANDOFF"] == "publish"
    assert env["FLASHSALE_MAX_BODY_BYTES"] == "8192"
    assert "jwt-secret" not in rendered.get("Secret", SECRET)["stringData"]


def test_hpa_owns_the_api_replicas(render: Render) -> None:
    rendered = render("hpa-values.yaml")
    hpa = rendered.get("HorizontalPodAutoscaler", name("api"))
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name("api"),
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    api = rendered.get("Deployment", name("api"))
    assert "replicas" not in api["spec"]
    assert container(api)["args"][-2:] == ["--workers", "4"]
    operator_env = env_of(container(rendered.get("Deployment", name("operator"))))
    assert operator_env["FLASHSALE_OPERATOR_API_DEPLOYMENT"] == ""


def test_service_monitors_and_dashboard(render: Render) -> None:
    rendered = render("monitoring-values.yaml")
    monitors = {m["metadata"]["name"]: m for m in rendered.all("ServiceMonitor")}
    assert set(monitors) == {name("api"), name("operator")}
    api_endpoint = monitors[name("api")]["spec"]["endpoints"][0]
    assert api_endpoint == {"port": "http", "path": "/metrics", "interval": "10s"}
    assert monitors[name("operator")]["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitors[name("api")]["metadata"]["labels"]["release"] == "prometheus"
    selector = monitors[name("operator")]["spec"]["selector"]["matchLabels"]
    assert (
        selector.items() <= rendered.get("Service", name("operator"))["metadata"]["labels"].items()
    )

    config = rendered.get("ConfigMap", name("dashboard"))
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["flashsale.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for outcome in ("accepted", "sold_out", "rate_limited"):
        assert f'flashsale_reservations_total{{outcome="{outcome}"}}' in exprs
    for metric in (
        'flashsale_sale_units{state="remaining"}',
        "flashsale_queue_messages",
        "pending_payment|paid|expired",
        "flashsale_sale_phase",
        "flashsale_outbox_reservations",
        "flashsale_outbox_oldest_age_seconds",
        "flashsale_orders",
        "flashsale_dead_letters_total",
        "flashsale_loop_runs_total",
        "flashsale_loop_failures_total",
        "flashsale_loop_last_success_timestamp_seconds",
        "flashsale_request_duration_seconds_bucket",
        "flashsale_sale_segments",
        "flashsale_sale_loan_units",
        "flashsale_sale_oldest_loan_age_seconds",
    ):
        assert metric in exprs, metric
    # Every API replica exports the same platform figures: panels take the max, never
    # the sum, of them.
    assert "sum by (sale) (flashsale_sale_units" not in exprs
    assert rendered.maybe("PrometheusRule", RELEASE + "-flashsale") is None


def test_prometheus_rule_alerts_with_the_thresholds_of_the_values(render: Render) -> None:
    assert not render().all("PrometheusRule")
    rendered = render("alerts-values.yaml")
    rule = rendered.get("PrometheusRule", f"{RELEASE}-flashsale")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "FlashSalePersistLag",
        "FlashSaleLoansUnsettled",
        "FlashSaleDeadLetters",
        "FlashSaleReaperNotRunning",
        "FlashSaleSweeperNotRunning",
        "FlashSaleQueueBacklog",
        "FlashSaleFiguresUnreadable",
    }
    lag = alerts["FlashSalePersistLag"]
    assert lag["expr"] == (
        f'max by (sale) (flashsale_outbox_oldest_age_seconds{{namespace="{NAMESPACE}"}}) > 45'
    )
    assert lag["for"] == "1m"
    assert lag["labels"] == {"severity": "critical", "team": "shop"}
    assert "{{ $labels.sale }}" in lag["annotations"]["summary"]
    loans = alerts["FlashSaleLoansUnsettled"]
    assert loans["expr"].startswith("max by (sale) (flashsale_sale_oldest_loan_age_seconds{")
    assert loans["expr"].endswith("> 240") and loans["for"] == "3m"
    assert "[10m]" in alerts["FlashSaleDeadLetters"]["expr"]
    reaper = alerts["FlashSaleReaperNotRunning"]["expr"]
    assert "> 300" in reaper and "absent(" in reaper and 'component="reaper"' in reaper
    assert alerts["FlashSaleQueueBacklog"]["expr"].endswith("> 5000")
    for alert in alerts.values():
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description"} <= set(alert["annotations"])


def test_minimal_install_without_operator_or_volumes(render: Render) -> None:
    rendered = render("minimal-values.yaml")
    assert rendered.maybe("Deployment", name("operator")) is None
    assert not rendered.all("Role") and not rendered.all("ServiceAccount")
    assert rendered.maybe("Pod", name("test-readyz")) is None
    for sts in rendered.all("StatefulSet"):
        assert "volumeClaimTemplates" not in sts["spec"]
        volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
        assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_names_follow_the_release(render: Render) -> None:
    rendered = render(sets=("fullnameOverride=tv",))
    assert rendered.maybe("Deployment", "tv-api") is not None
    role = rendered.get("Role", "tv-operator")
    assert role["rules"][-1]["resourceNames"] == ["tv-api", "tv-worker"]


def test_existing_secrets_only_means_no_generated_secret(render: Render) -> None:
    rendered = render("existing-secrets-values.yaml")
    assert not rendered.all("Secret")
    env = env_of(container(rendered.get("Deployment", name("api"))))
    assert env["FLASHSALE_JWT_SECRET"] == ("shop-jwt", "jwt-secret")
    assert env["FLASHSALE_REDIS_URL"] == ("shop-redis", "redis-url")
    assert env["FLASHSALE_BROKER_URL"] == ("shop-broker", "broker-url")
    assert env["FLASHSALE_DATABASE_URL"] == ("shop-database", "database-url")
    for obj in workloads(rendered):
        for box in pod_spec(obj)["containers"]:
            for value in env_of(box).values():
                assert not (isinstance(value, tuple) and value[0] == SECRET)
