"""Redis comes back without its latest writes (a replica promoted late, a restart from an
old snapshot) and sells units again that are already in orders: the SQL guard keeps live
orders at or below stock, the excess is `rejected` and cannot be paid, and
`flashsale sale rebuild` puts Redis right from SQL."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess

import httpx

from flashsale.embedded import RedisServer
from flashsale.stock.keys import SaleKeys
from tests.conftest import FLASHSALE, token
from tests.faults.conftest import Stack, click_until_answered, drop_unanswered

STOCK = 100


async def test_lost_writes_cannot_oversell_and_rebuild_repairs_redis(stack: Stack) -> None:
    base = stack.start_api()
    stack.start_worker(FLASHSALE_ORDERS_PER_SECOND="100000")
    sale = stack.sale(stock=STOCK)
    async with stack.watch(sale, STOCK) as timeline, stack.crowd(base, sale) as crowd:
        await asyncio.gather(*(crowd.click(1, f"early-{i}", "k") for i in range(40)))
        await asyncio.to_thread(stack.settle, sale, 40)
        stack.client.save()  # the snapshot Redis will come back from
        await asyncio.gather(*(crowd.click(1, f"mid-{i}", "k") for i in range(40)))
        await asyncio.to_thread(stack.settle, sale, 80)

        # Redis dies and returns from the snapshot: the last 40 sales are forgotten.
        assert stack.redis.proc is not None
        stack.redis.proc.send_signal(signal.SIGKILL)
        stack.redis.proc.wait()
        for log in ("appendonlydir", "appendonly.aof"):  # Redis 7 and Redis 6 layouts
            path = stack.redis.data_dir / log
            if path.is_dir():
                shutil.rmtree(path)
            path.unlink(missing_ok=True)
        stack.redis = RedisServer(stack.redis.data_dir, port=stack.redis.port, appendonly=False)
        stack.redis.start()
        stack.faults.append("Redis restarted from a snapshot 40 sales old")
        assert stack.client.get(SaleKeys(sale).stock) == b"60"

        # The first calls on connections Redis dropped may answer 503; clients retry.
        late = await asyncio.gather(
            *(click_until_answered(crowd, f"late-{i}", "k") for i in range(100))
        )
        assert sum(click.status == 202 for click, _ in late) == 60  # Redis oversold by 40
        await asyncio.to_thread(stack.settle, sale, 140)

        statuses = [row["status"] for row in _orders(stack, sale)]
        assert statuses.count("rejected") == 40
        assert len(statuses) - statuses.count("rejected") == STOCK  # never above stock
        rejected = next(r for r in _orders(stack, sale) if r["status"] == "rejected")
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            pay = await client.post(
                f"/v1/orders/{rejected['id']}/payment",
                headers={"Authorization": f"Bearer {token(rejected['user_id'])}"},
            )
        assert pay.status_code == 409 and pay.json()["error"] == "rejected"

        rebuilt = subprocess.run(
            [FLASHSALE, "sale", "rebuild", sale],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "0 units for sale" in rebuilt.stdout
    drop_unanswered(crowd)
    stack.record(
        "Redis lost writes (old snapshot)",
        crowd,
        timeline,
        rejected_by_sql_guard=40,
        after_rebuild="remaining 0, figures add up",
    )


def _orders(stack: Stack, sale: str) -> list[dict[str, str]]:
    from sqlalchemy import text

    with stack.sessions() as session:
        rows = session.execute(
            text("SELECT id::text AS id, user_id, status FROM orders WHERE sale = :s"),
            {"s": sale},
        ).mappings()
        return [dict(row) for row in rows]
