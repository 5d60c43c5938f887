"""`flashsale up` keeps its platform running while parts of it die or freeze: the worker's
main process killed, its own Redis frozen for 10 s, its own redis-server and postgres
killed. Nothing stops the platform; what exited is restarted (a log line says so) and the
sale goes on: every accepted purchase becomes an order."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from flashsale.api.auth import issue_token
from flashsale.datadir import SECRET_FILE
from tests.conftest import wait_for
from tests.faults.conftest import REPORT
from tests.helpers.up import Up

SALE = "up-faults"
SALE_YAML = f"""\
apiVersion: flashsale.dev/v1alpha1
kind: FlashSale
metadata: {{name: {SALE}}}
spec: {{sku: UP-1, stock: 1000, paymentTimeoutSeconds: 600, rateLimit: {{requestsPerSecond: 0}}}}
"""
# Reservations that lost their task message (a killed worker) are handed out again soon.
SWEEP_AFTER = "2"


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    root = Path(tempfile.mkdtemp(prefix="flashsale-up-faults-"))
    platform = Up(root / "data", root / "up.log", FLASHSALE_SWEEP_AFTER_SECONDS=SWEEP_AFTER)
    try:
        wait_for(platform.ready, timeout=120, every=0.3)
        (root / "sale.yaml").write_text(SALE_YAML)
        platform.cli("sale", "apply", "-f", str(root / "sale.yaml"))
        yield platform
        platform.interrupt()
    finally:
        for pid in children(platform.proc.pid):  # a test that failed mid-freeze
            os.kill(pid, signal.SIGCONT)
        platform.kill()
        if not os.environ.get("FLASHSALE_KEEP_FAULT_LOGS"):
            shutil.rmtree(root, ignore_errors=True)


def children(pid: int) -> dict[int, list[str]]:
    """The direct children of `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = argv
    return found


def child(up: Up, match: str) -> int | None:
    """The pid of the child of `up` whose command line has `match` as an argument, or in
    its program's name."""
    for pid, argv in children(up.proc.pid).items():
        if match in argv or match in Path(argv[0]).name:
            return pid
    return None


def buy(up: Up, users: list[str]) -> list[int]:
    secret = (Path(up.env["FLASHSALE_DATA_DIR"]) / SECRET_FILE).read_text().strip()

    def one(user: str) -> int:
        headers = {"Authorization": f"Bearer {issue_token(secret, user)}", "Idempotency-Key": "k"}
        for _ in range(60):  # like a shopper's app: retry what was not answered
            try:
                answer = httpx.post(
                    f"{up.base}/v1/sales/{SALE}/reservations", headers=headers, timeout=5
                )
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if answer.status_code != 503:
                return answer.status_code
            time.sleep(0.5)
        return 0

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, users))


def figures(up: Up) -> dict[str, int]:
    stock: dict[str, int] = json.loads(up.cli("sale", "status", SALE, "-o", "json"))["stock"]
    return stock


def all_persisted(up: Up) -> bool:
    stock = figures(up)
    return stock["reserved"] == 0 and stock["pending_payment"] + stock["remaining"] == 1000


def log_text(up: Up) -> str:
    return up.log.read_text(errors="replace")


def test_killed_worker_is_restarted_and_orders_are_persisted(up: Up) -> None:
    worker = child(up, "worker")
    assert worker is not None
    before = buy(up, [f"w-before-{i}" for i in range(20)])
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: child(up, "worker") not in (None, worker), timeout=30, every=0.05)
    restarted_after = time.monotonic() - killed
    after = buy(up, [f"w-after-{i}" for i in range(20)])
    assert before + after == [202] * 40
    wait_for(lambda: all_persisted(up), timeout=60, every=0.5)
    assert "worker exited with -9; restarting in 0.5s (restart 1)" in log_text(up)
    assert restarted_after < 5, restarted_after
    REPORT.append(
        {
            "scenario": "flashsale up: worker main process killed",
            "restarted_after": round(restarted_after, 2),
        }
    )
    assert up.proc.poll() is None


def test_frozen_redis_stops_nothing_and_the_api_answers_after(up: Up) -> None:
    redis_pid = child(up, "redis-server")
    loops = (child(up, "reap"), child(up, "sweep"))
    assert redis_pid is not None and None not in loops
    with ThreadPoolExecutor(1) as shoppers:
        during = shoppers.submit(buy, up, [f"f-during-{i}" for i in range(20)])
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            time.sleep(10)
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        answered = during.result()
    thawed = time.monotonic()
    wait_for(up.ready, timeout=30, every=0.1)
    REPORT.append(
        {
            "scenario": "flashsale up: its Redis frozen for 10 s",
            "ready_after_thaw": round(time.monotonic() - thawed, 2),
        }
    )
    assert answered == [202] * 20
    assert buy(up, [f"f-after-{i}" for i in range(10)]) == [202] * 10
    wait_for(lambda: all_persisted(up), timeout=60, every=0.5)
    assert up.proc.poll() is None
    # The loops rode it out: same processes, no restart.
    assert (child(up, "reap"), child(up, "sweep")) == loops
    assert "reaper exited" not in log_text(up) and "sweeper exited" not in log_text(up)


def test_killed_redis_and_postgres_come_back_on_their_ports_with_their_data(up: Up) -> None:
    buy(up, [f"s-before-{i}" for i in range(10)])
    wait_for(lambda: all_persisted(up), timeout=60, every=0.5)
    time.sleep(1.5)  # the append-only file is written every second
    remaining = figures(up)["remaining"]
    restarted: dict[str, float] = {}
    for server in ("redis-server", "postgres"):
        pid = child(up, server)
        assert pid is not None
        argv = children(up.proc.pid)[pid]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        back = f"{server} is back on port"
        wait_for(lambda: back in log_text(up), timeout=60, every=0.05)  # noqa: B023
        restarted[server] = round(time.monotonic() - killed, 2)
        again = child(up, server)
        assert again is not None and again != pid
        assert children(up.proc.pid)[again] == argv  # same port, same data folder
        wait_for(up.ready, timeout=30, every=0.3)
        assert figures(up)["remaining"] == remaining
    assert "redis-server exited with -9; restarting on port" in log_text(up)
    assert buy(up, [f"s-after-{i}" for i in range(10)]) == [202] * 10
    wait_for(lambda: all_persisted(up), timeout=60, every=0.5)
    assert figures(up)["remaining"] == remaining - 10
    REPORT.append(
        {"scenario": "flashsale up: its redis-server and postgres killed", "back_after": restarted}
    )


def test_killed_api_is_restarted_on_its_port(up: Up) -> None:
    api = child(up, "api")
    assert api is not None
    os.kill(api, signal.SIGKILL)  # its server workers stay behind, holding the port
    killed = time.monotonic()
    wait_for(lambda: child(up, "api") not in (None, api), timeout=30, every=0.05)
    wait_for(up.ready, timeout=60, every=0.1)
    REPORT.append(
        {
            "scenario": "flashsale up: API main process killed",
            "ready_after": round(time.monotonic() - killed, 2),
        }
    )
    assert "api exited with -9; restarting in" in log_text(up)
    assert buy(up, [f"a-after-{i}" for i in range(10)]) == [202] * 10
    wait_for(lambda: all_persisted(up), timeout=60, every=0.5)
