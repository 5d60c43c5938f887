"""A Redis Cluster in the settings: its URL read in one place, and what a cluster cannot do
refused when a component starts, naming the setting to change."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from flashsale.datadir import PlatformRecord, record_servers, running_servers
from flashsale.settings import ClusterAddress, Settings, is_cluster_url, parse_cluster_url
from tests.conftest import FLASHSALE

CLUSTER = "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"
BROKER = "redis://10.0.0.9:6379/0"


def test_cluster_urls_are_told_apart_from_one_redis() -> None:
    assert is_cluster_url(CLUSTER)
    assert is_cluster_url("rediss+cluster://h:1")
    assert is_cluster_url("REDIS+CLUSTER://h:1")
    for plain in ("redis://h:6379/0", "rediss://h:6380", "unix:///tmp/r.sock", "h:7000", ""):
        assert not is_cluster_url(plain)


def test_a_cluster_url_gives_its_seeds_credentials_and_tls() -> None:
    assert parse_cluster_url(CLUSTER) == ClusterAddress((("10.0.0.1", 7000), ("10.0.0.2", 7001)))
    assert parse_cluster_url("rediss+cluster://:p%40ss@a:1,b:2/0") == ClusterAddress(
        (("a", 1), ("b", 2)), username=None, password="p@ss", tls=True
    )
    assert parse_cluster_url("redis+cluster://app:pw@a") == ClusterAddress(
        (("a", 6379),), username="app", password="pw"
    )
    assert parse_cluster_url("redis+cluster://[::1]:7000, [::1]:7001").nodes == (
        ("::1", 7000),
        ("::1", 7001),
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://a:1", "starts with redis+cluster://"),
        ("redis+cluster://", "at least one host:port"),
        ("redis+cluster://a:1/2", "only database 0"),
        ("redis+cluster://a:1?ssl_cert_reqs=none", "no query options"),
        ("redis+cluster://a:port", "bad port"),
        ("redis+cluster://a:70000", "bad port"),
        ("redis+cluster://:1", "no host"),
    ],
)
def test_a_bad_cluster_url_says_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_cluster_url(url)


def test_with_a_cluster_the_broker_is_required() -> None:
    settings = Settings(redis_url=CLUSTER)
    assert settings.redis_cluster
    assert settings.effective_broker_url is None  # never the cluster itself
    for require in (settings.check_redis, settings.require_redis_url, settings.require_broker_url):
        with pytest.raises(RuntimeError, match="set FLASHSALE_BROKER_URL to a plain Redis"):
            require()


def test_with_a_cluster_the_handoff_is_publish_and_script_is_refused() -> None:
    settings = Settings(redis_url=CLUSTER, broker_url=BROKER)
    settings.check_redis()
    assert settings.require_redis_url() == CLUSTER
    assert settings.require_broker_url() == settings.effective_broker_url == BROKER
    assert not settings.script_handoff
    assert not Settings(redis_url=CLUSTER, broker_url=BROKER, handoff="publish").script_handoff
    script = Settings(redis_url=CLUSTER, broker_url=BROKER, handoff="script")
    with pytest.raises(RuntimeError, match="FLASHSALE_HANDOFF=script .* set FLASHSALE_HANDOFF"):
        script.require_redis_url()
    assert not script.script_handoff


def test_one_redis_is_as_before() -> None:
    one = Settings(redis_url="redis://r:6379/0")
    one.check_redis()
    assert one.effective_broker_url == one.require_broker_url() == "redis://r:6379/0"
    assert one.script_handoff and not one.redis_cluster
    apart = Settings(redis_url="redis://r:6379/0", broker_url=BROKER)
    assert apart.require_broker_url() == BROKER and not apart.script_handoff


def test_a_cluster_as_broker_or_a_bad_cluster_url_is_refused() -> None:
    with pytest.raises(RuntimeError, match="FLASHSALE_BROKER_URL names a Redis Cluster"):
        Settings(redis_url="redis://r:6379/0", broker_url=CLUSTER).check_redis()
    with pytest.raises(RuntimeError, match="FLASHSALE_REDIS_URL is not a usable cluster URL"):
        Settings(redis_url="redis+cluster://a:1/3", broker_url=BROKER).check_redis()


def test_the_data_folder_gives_the_broker_with_the_cluster(tmp_path: Path) -> None:
    record = PlatformRecord(CLUSTER, "postgresql://x@127.0.0.1:2/db", os.getpid(), BROKER)
    record_servers(tmp_path, record)
    assert running_servers(tmp_path) == record
    beside = Settings(data_dir=tmp_path).with_local_platform()
    assert (beside.redis_url, beside.broker_url) == (CLUSTER, BROKER)
    assert beside.require_broker_url() == BROKER
    # Its own Redis configured: the platform's broker is not taken with it.
    mine = Settings(data_dir=tmp_path, redis_url="redis://mine:1/0").with_local_platform()
    assert mine.broker_url is None and mine.require_broker_url() == "redis://mine:1/0"


def test_a_record_without_a_broker_still_reads(tmp_path: Path) -> None:
    (tmp_path / "servers.json").write_text(
        f'{{"redis_url": "redis://r:1/0", "database_url": "postgresql://d", "pid": {os.getpid()}}}'
    )
    found = running_servers(tmp_path)
    assert found is not None and found.broker_url is None
    assert Settings(data_dir=tmp_path).with_local_platform().effective_broker_url == "redis://r:1/0"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "set FLASHSALE_BROKER_URL to a plain Redis"),
        (
            {"FLASHSALE_BROKER_URL": BROKER, "FLASHSALE_HANDOFF": "script"},
            "FLASHSALE_HANDOFF=script",
        ),
    ],
)
@pytest.mark.parametrize("command", [["worker"], ["reap"], ["sale", "list"]])
def test_a_command_on_a_cluster_it_cannot_use_exits_with_one_line(
    tmp_path: Path, command: list[str], extra: dict[str, str], message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env |= {
        "FLASHSALE_DATA_DIR": str(tmp_path),
        "FLASHSALE_REDIS_URL": CLUSTER,
        "FLASHSALE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        **extra,
    }
    done = subprocess.run(
        [FLASHSALE, *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
