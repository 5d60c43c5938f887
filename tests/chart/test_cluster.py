"""The chart with stock in a Redis Cluster: every FlashSale container gets the cluster URL,
a broker of its own and the publish handoff; the schema (and, without it, the templates)
refuse a cluster without a broker and a malformed cluster URL."""

from __future__ import annotations

from typing import Any

import pytest

from flashsale.settings import Settings, parse_cluster_url
from tests.chart.conftest import CHART, Helm, Render, Rendered, env_of, name, pod_spec

SECRET = "shop-flashsale"
CLUSTER_URL = "rediss+cluster://:s3cret@clustercfg.shop.abc123.use1.cache.amazonaws.com:6379"
BROKER_URL = "rediss://:s3cret@broker.shop.abc123.use1.cache.amazonaws.com:6379/0"
# Every FlashSale component that talks to Redis or the broker (the migration gets the same
# environment, so it could not start against the wrong Redis either).
COMPONENTS = [
    ("Deployment", "api"),
    ("Deployment", "worker"),
    ("Deployment", "operator"),
    ("CronJob", "reaper"),
    ("CronJob", "sweeper"),
    ("Job", "migrate"),
]
EXTERNAL_CLUSTER = ("redis.enabled=false", "postgresql.enabled=false")


def flashsale_env(rendered: Rendered, kind: str, component: str) -> dict[str, Any]:
    return env_of(pod_spec(rendered.get(kind, name(component)))["containers"][0])


def template(helm: Helm, *sets: str, skip_schema: bool = False) -> Any:
    args = ["template", "shop", str(CHART), "--namespace", "flashsale"]
    if skip_schema:
        args.append("--skip-schema-validation")
    for assignment in (*EXTERNAL_CLUSTER, "postgresql.external.url=postgresql://pg/shop", *sets):
        # --set splits on commas: the seeds of a cluster URL are escaped.
        args += ["--set", assignment.replace(",", "\\,")]
    return helm(*args, check=False)


@pytest.mark.parametrize(("kind", "component"), COMPONENTS)
def test_every_component_gets_the_cluster_the_broker_and_the_publish_handoff(
    render: Render, kind: str, component: str
) -> None:
    env = flashsale_env(render("cluster-values.yaml"), kind, component)
    assert env["FLASHSALE_REDIS_URL"] == (SECRET, "redis-url")
    assert env["FLASHSALE_BROKER_URL"] == (SECRET, "broker-url")
    assert env["FLASHSALE_HANDOFF"] == "publish"


@pytest.mark.parametrize(
    ("values", "their_secrets"),
    [
        ("cluster-values.yaml", {("shop-database", "url"): "postgresql://pg/shop"}),
        (
            "cluster-bundled-broker-values.yaml",
            {("shop-redis-cluster", "url"): "rediss+cluster://:pw@cfg.redis.infra:6379"},
        ),
    ],
)
def test_the_platform_starts_with_what_the_chart_renders(
    render: Render, values: str, their_secrets: dict[tuple[str, str], str]
) -> None:
    """Each component's environment, its Secret references resolved, passes the platform's
    own check of a Redis Cluster configuration (broker set, handoff publish)."""
    rendered = render(values)
    ours = rendered.get("Secret", SECRET)["stringData"]
    for kind, component in COMPONENTS:
        given: dict[str, Any] = {}
        for variable, value in flashsale_env(rendered, kind, component).items():
            if isinstance(value, tuple):
                value = ours[value[1]] if value[0] == SECRET else their_secrets.get(value, "")
            given[variable.removeprefix("FLASHSALE_").lower()] = value
        settings = Settings(**{k: v for k, v in given.items() if k in Settings.model_fields})
        assert settings.redis_cluster, component
        settings.check_redis()
        assert settings.script_handoff is False
        assert settings.require_broker_url() == settings.broker_url != settings.redis_url


def test_the_urls_are_kept_in_the_releases_secret(render: Render) -> None:
    rendered = render("cluster-values.yaml")
    data = rendered.get("Secret", SECRET)["stringData"]
    assert data["redis-url"] == CLUSTER_URL
    assert data["broker-url"] == BROKER_URL
    assert set(data) == {"jwt-secret", "redis-url", "broker-url"}
    assert not rendered.all("StatefulSet")  # no Redis, no PostgreSQL in the release
    for obj in rendered.objects:  # passwords only ever in the Secret
        if obj["kind"] != "Secret":
            assert "s3cret" not in str(obj), obj["metadata"]["name"]


@pytest.mark.parametrize(("kind", "component"), COMPONENTS)
def test_the_bundled_redis_can_serve_as_the_clusters_broker(
    render: Render, kind: str, component: str
) -> None:
    env = flashsale_env(render("cluster-bundled-broker-values.yaml"), kind, component)
    assert env["FLASHSALE_REDIS_URL"] == ("shop-redis-cluster", "url")
    assert env["FLASHSALE_BROKER_URL"] == (SECRET, "broker-url")
    assert env["FLASHSALE_HANDOFF"] == "publish"


def test_the_bundled_broker_is_the_releases_redis_with_its_password(render: Render) -> None:
    rendered = render("cluster-bundled-broker-values.yaml")
    data = rendered.get("Secret", SECRET)["stringData"]
    assert "redis-url" not in data  # the cluster's URL is in their Secret
    assert data["broker-url"] == f"redis://:{data['redis-password']}@{name('redis')}:6379/0"
    redis = rendered.get("StatefulSet", name("redis"))
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "2Gi"
    }
    assert rendered.get("Service", name("redis"))["spec"]["ports"][0]["port"] == 6379


def test_a_handoff_setting_is_rendered_once(render: Render) -> None:
    rendered = render("cluster-values.yaml", sets=("settings.FLASHSALE_HANDOFF=publish",))
    box = pod_spec(rendered.get("Deployment", name("api")))["containers"][0]
    names = [item["name"] for item in box["env"]]
    assert names.count("FLASHSALE_HANDOFF") == 1


def test_one_redis_keeps_the_handoff_to_the_settings(render: Render) -> None:
    for values in ((), ("external-values.yaml",)):
        for kind, component in COMPONENTS:
            assert "FLASHSALE_HANDOFF" not in flashsale_env(render(*values), kind, component)


def test_a_url_marked_as_a_cluster_is_treated_as_one(helm: Helm) -> None:
    result = template(
        helm,
        "redis.external.existingSecret=shop-redis",
        "redis.external.cluster=true",
        "broker.existingSecret=shop-broker",
    )
    assert result.returncode == 0, result.stderr
    api = Rendered(result.stdout).get("Deployment", name("api"))
    env = env_of(pod_spec(api)["containers"][0])
    assert env["FLASHSALE_REDIS_URL"] == ("shop-redis", "redis-url")
    assert env["FLASHSALE_BROKER_URL"] == ("shop-broker", "broker-url")
    assert env["FLASHSALE_HANDOFF"] == "publish"


@pytest.mark.parametrize(
    ("sets", "path", "sentence"),
    [
        (
            ("redis.external.url=redis+cluster://10.0.0.1:6379",),
            "/broker",
            "Celery cannot use as its broker: set broker.url, broker.existingSecret or "
            "broker.bundledRedis",
        ),
        (
            ("redis.external.existingSecret=shop-redis", "redis.external.cluster=true"),
            "/broker",
            "Celery cannot use as its broker",
        ),
        (
            (
                "redis.external.url=rediss+cluster://node-1:6379",
                "broker.url=redis://broker:6379/0",
                "settings.FLASHSALE_HANDOFF=script",
            ),
            "/settings/FLASHSALE_HANDOFF",
            "FLASHSALE_HANDOFF must be publish",
        ),
        (
            (
                "redis.external.url=rediss+cluster://node-1:6379/2",
                "broker.url=redis://broker:6379/0",
            ),
            "/redis/external/url",
            "a Redis Cluster URL reads redis+cluster://",
        ),
        (
            (
                "redis.external.url=redis://node-1:6379",
                "redis.external.cluster=true",
                "broker.url=redis://broker:6379/0",
            ),
            "/redis/external/url",
            "redis.external.cluster is true but redis.external.url is not",
        ),
        (
            (
                "redis.external.url=redis+cluster://node-1:6379",
                "broker.url=redis+cluster://broker:6379",
            ),
            "/broker/url",
            "broker.url must name one Redis",
        ),
        (
            (
                "redis.external.url=redis+cluster://node-1:6379",
                "broker.url=redis://broker:6379/0",
                "broker.bundledRedis=true",
            ),
            "/broker/url",
            "leave broker.url and broker.existingSecret empty",
        ),
        (
            ("redis.enabled=true", "broker.bundledRedis=true"),
            "/redis/enabled",
            "set redis.enabled false",
        ),
    ],
)
def test_the_schema_and_the_templates_refuse_what_cannot_work(
    helm: Helm, sets: tuple[str, ...], path: str, sentence: str
) -> None:
    checked = template(helm, *sets)
    assert checked.returncode != 0, f"--set {sets} rendered"
    assert "schema" in checked.stderr and f"'{path}'" in checked.stderr, checked.stderr
    # The same values past the schema (--skip-schema-validation) fail with a sentence.
    unchecked = template(helm, *sets, skip_schema=True)
    assert unchecked.returncode != 0, f"--set {sets} rendered without the schema"
    assert sentence in unchecked.stderr, unchecked.stderr


def platform_takes(url: str) -> bool:
    try:
        parse_cluster_url(url)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://node-1:6379",
        "redis+cluster://node-1",  # the default port
        "redis+cluster://node-1:7000,node-2:7001,node-3:7002",
        "rediss+cluster://:p%40ss@clustercfg.shop.abc123.use1.cache.amazonaws.com:6379",
        "rediss+cluster://default:s3cret@10.0.0.5:6379/",
        "redis+cluster://:p@ss@node-1:6379/0",
        "redis+cluster://[fd00::1]:6379,[fd00::2]:6379",
        "redis+cluster://",
        "redis+cluster://:6379",
        "redis+cluster://node-1:6379/2",
        "rediss+cluster://node-1:6379?ssl_cert_reqs=none",
        "redis+cluster://node-1:6379#main",
        "redis+cluster://node-1:0",
        "redis+cluster://node-1:65536",
        "redis+cluster://node-1:http",
    ],
)
def test_the_chart_takes_the_cluster_urls_the_platform_takes(helm: Helm, url: str) -> None:
    """The schema's pattern and the templates' check agree with the platform's own reading
    of a cluster URL (flashsale.settings.parse_cluster_url)."""
    sets = (f"redis.external.url={url}", "broker.url=redis://broker:6379/0")
    expected = platform_takes(url)
    for skip_schema in (False, True):
        result = template(helm, *sets, skip_schema=skip_schema)
        assert (result.returncode == 0) is expected, (skip_schema, result.stderr)
        if expected:
            data = Rendered(result.stdout).get("Secret", SECRET)["stringData"]
            assert data["redis-url"] == url
        elif skip_schema:
            assert "a Redis Cluster URL reads redis+cluster://" in result.stderr
        else:
            assert "'/redis/external/url'" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "url", ["redis://redis.infra:6379/0", "rediss://:s3cret@redis.infra:6380/3"]
)
def test_one_redis_is_still_named_by_a_plain_url(helm: Helm, url: str) -> None:
    result = template(helm, f"redis.external.url={url}")
    assert result.returncode == 0, result.stderr
    assert "FLASHSALE_HANDOFF" not in result.stdout


def test_notes_say_where_stock_and_the_broker_are(helm: Helm) -> None:
    for values, broker in (
        ("cluster-values.yaml", "the separate Redis of broker.url"),
        ("cluster-bundled-broker-values.yaml", f"this release's own Redis ({name('redis')})"),
    ):
        result = helm(
            "install", "shop", str(CHART), "--dry-run=client", "-f", str(CHART / "ci" / values)
        )
        notes = " ".join(result.stdout.split("NOTES:", 1)[1].split())
        assert f"Stock is in a Redis Cluster; the Celery broker is {broker}" in notes
        assert "FLASHSALE_HANDOFF=publish" in notes and "spec.segments" in notes
    notes = helm("install", "shop", str(CHART), "--dry-run=client").stdout.split("NOTES:", 1)[1]
    assert "Redis Cluster" not in notes
