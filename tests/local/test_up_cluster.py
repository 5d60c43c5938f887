"""`flashsale up --redis-cluster N`: the same platform with stock on a local Redis Cluster
and the broker on a Redis of its own; commands beside it find both through the data
folder, and a purchase becomes an order through that broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.cluster

from flashsale import clients
from flashsale.embedded import free_port
from flashsale.local.process import Process
from tests.conftest import FLASHSALE, descendants, wait_for
from tests.helpers.up import Up, local_env

SALE_YAML = """\
apiVersion: flashsale.dev/v1alpha1
kind: FlashSale
metadata: {name: cluster-drop}
spec: {sku: CLUSTER-1, stock: 5, paymentTimeoutSeconds: 600}
"""
COMPONENTS = {"api", "worker", "reap", "sweep"}


class ClusterUp(Up):
    """`Up`, with stock on a local cluster of `masters` masters."""

    def __init__(self, data_dir: Path, log: Path, masters: int) -> None:
        self.port = free_port()
        command = [FLASHSALE, "up", "--port", str(self.port), "--api-workers", "1"]
        Process.__init__(
            self, [*command, "--redis-cluster", str(masters)], local_env(data_dir), log=log
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.start()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flashsale-up-cluster-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def component_envs(pid: int) -> dict[str, dict[str, str]]:
    """The environment each component under `pid` started with, by command."""
    found: dict[str, dict[str, str]] = {}
    for child in descendants(pid):
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
            raw = Path(f"/proc/{child}/environ").read_bytes().decode()
        except OSError:
            continue
        command = next((arg for arg in args if arg in COMPONENTS), None)
        if command and args[1:3] == ["-m", "flashsale"]:
            found[command] = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    return found


def test_up_with_a_redis_cluster_runs_every_component_on_it(data_dir: Path) -> None:
    up = ClusterUp(data_dir, data_dir.parent / "up.log", masters=3)
    try:
        wait_for(up.ready, timeout=120, every=0.3)
        record = json.loads((data_dir / "servers.json").read_text())
        cluster_url, broker_url = record["redis_url"], record["broker_url"]
        assert cluster_url.startswith("redis+cluster://127.0.0.1:")
        assert broker_url.startswith("redis://127.0.0.1:")
        envs = component_envs(up.main.pid)
        assert set(envs) == COMPONENTS
        for env in envs.values():
            assert (env["FLASHSALE_REDIS_URL"], env["FLASHSALE_BROKER_URL"]) == (
                cluster_url,
                broker_url,
            )
        stock = clients.stock_redis_at(cluster_url)
        assert isinstance(stock, redis.cluster.RedisCluster)
        assert (len(stock.get_primaries()), len(stock.get_replicas())) == (3, 3)

        # Beside it, a sale goes into the cluster; the sweep talks to the broker.
        sale_file = data_dir.parent / "sale.yaml"
        sale_file.write_text(SALE_YAML)
        assert "applied" in up.cli("sale", "apply", "-f", str(sale_file))
        assert "CLUSTER-1" in up.cli("sale", "list")
        assert "re-published 0" in up.cli("sweep")
        assert any(b"cluster-drop" in key for key in stock.keys(target_nodes=stock.PRIMARIES))
        broker = clients.redis_client(broker_url)
        assert not [key for key in broker.keys() if b"cluster-drop" in key]
        broker.close()
        stock.close()

        # A purchase is handed on through the broker and becomes an order in SQL.
        token = up.cli("token", "alice").strip()
        answer = httpx.post(
            f"{up.base}/v1/sales/cluster-drop/reservations",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text + up.output()[-3000:]
        wait_for(lambda: _pending(up) == 1, timeout=30)
        up.interrupt()
    finally:
        up.kill()
    assert not (data_dir / "servers.json").exists()


def _pending(up: Up) -> int:
    status = up.cli("sale", "status", "cluster-drop", "-o", "json")
    return int(json.loads(status)["stock"]["pending_payment"])


def test_up_refuses_a_cluster_beside_a_configured_redis(tmp_path: Path) -> None:
    env = local_env(tmp_path / "data") | {"FLASHSALE_REDIS_URL": "redis://127.0.0.1:1/0"}
    refusals = (("3", "unset it, or leave out --redis-cluster"), ("2", "not in the range"))
    for flag, message in refusals:
        done = subprocess.run(
            [FLASHSALE, "up", "--port", str(free_port()), "--redis-cluster", flag],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
