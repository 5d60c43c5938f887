"""Each Redis master's share of the work, as the demo and the benchmark report it.

Every master keeps its own counters: `INFO commandstats` (calls and microseconds spent
executing each command, `cmdstat_evalsha` for the stock scripts) and `INFO cpu` (the
whole process's CPU time, I/O and replication included). Reading them on every master
before and after a sale and subtracting gives each master's part; on one Redis the one
server is the only "master".

Which master serves a segment: every key of segment `s` carries the hash tag `{s}`
(flashsale/stock/keys.py), and the slot of a tag is the slot of the bare string, so
`keyslot(s)` is the slot of every key of the segment; the client's slot map names its
master."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis
import redis.cluster

from flashsale.clients import StockRedis


@dataclass(frozen=True, slots=True)
class MasterWork:
    """A master's counters (cumulative since it started, or the difference of two reads)."""

    address: str  # host:port
    evalsha_calls: int = 0
    evalsha_usec: int = 0  # executing the stock scripts
    commands_usec: int = 0  # executing any command
    cpu_usec: int = 0  # the process's user + system CPU time

    def since(self, earlier: MasterWork) -> MasterWork:
        return MasterWork(
            self.address,
            self.evalsha_calls - earlier.evalsha_calls,
            self.evalsha_usec - earlier.evalsha_usec,
            self.commands_usec - earlier.commands_usec,
            self.cpu_usec - earlier.cpu_usec,
        )


def _servers(client: StockRedis) -> list[tuple[str, redis.Redis]]:
    if isinstance(client, redis.cluster.RedisCluster):
        masters = client.get_primaries()  # type: ignore[no-untyped-call]  # untyped upstream
        return [(node.name, node.redis_connection) for node in masters]
    kwargs = client.connection_pool.connection_kwargs
    return [(f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}", client)]


def _work(address: str, server: redis.Redis) -> MasterWork:
    stats = server.info("commandstats")
    cpu = server.info("cpu")
    evalsha = stats.get("cmdstat_evalsha") or {}
    return MasterWork(
        address,
        evalsha_calls=int(evalsha.get("calls", 0)),
        evalsha_usec=int(evalsha.get("usec", 0)),
        commands_usec=sum(int(v.get("usec", 0)) for v in stats.values() if isinstance(v, dict)),
        cpu_usec=round((float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6),
    )


def read_masters(client: StockRedis) -> dict[str, MasterWork]:
    """Every master's counters now, by address (the one server of a single Redis)."""
    return {address: _work(address, server) for address, server in _servers(client)}


def work_between(
    before: Mapping[str, MasterWork], after: Mapping[str, MasterWork]
) -> list[MasterWork]:
    """What each master did between two reads, in address order (a master that appeared
    in between, after a failover, counts from zero)."""
    return [after[a].since(before.get(a, MasterWork(a))) for a in sorted(after, key=_address_order)]


def _address_order(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port) if port.isdigit() else 0


def master_of_segments(client: StockRedis, segments: Sequence[str]) -> dict[str, list[str]]:
    """The segments each master serves, by address, as the client's slot map has it."""
    if not isinstance(client, redis.cluster.RedisCluster):
        return {address: list(segments) for address, _ in _servers(client)}
    masters = client.get_primaries()  # type: ignore[no-untyped-call]  # untyped upstream
    found: dict[str, list[str]] = {node.name: [] for node in masters}
    for segment in segments:
        slot = client.keyslot(segment)  # type: ignore[no-untyped-call]  # untyped upstream
        node = client.nodes_manager.get_node_from_slot(slot)
        found.setdefault(node.name, []).append(segment)
    return found


def share(part: float, whole: float) -> float:
    """`part` of `whole` in percent (0 when there is no whole)."""
    return 100.0 * part / whole if whole else 0.0
