"""`flashsale up` as a user runs it: empty data folder, commands beside it, Ctrl-C, restart."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flashsale.embedded import free_port
from flashsale.local.process import Process
from tests.conftest import FLASHSALE, wait_for
from tests.helpers.up import Up

SALE_YAML = """\
apiVersion: flashsale.dev/v1alpha1
kind: FlashSale
metadata: {name: local-drop}
spec: {sku: LOCAL-1, stock: 5, paymentTimeoutSeconds: 600}
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flashsale-up-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_serves_then_stops_everything_and_keeps_the_data(data_dir: Path) -> None:
    log = data_dir.parent / "up.log"
    first = Up(data_dir, log)
    try:
        wait_for(first.ready, timeout=120, every=0.3)
        assert (data_dir / "servers.json").exists()
        # Other commands find the running platform through the data folder alone.
        sale_file = data_dir.parent / "sale.yaml"
        sale_file.write_text(SALE_YAML)
        assert "applied" in first.cli("sale", "apply", "-f", str(sale_file))
        token = first.cli("token", "alice").strip()
        answer = httpx.post(
            f"{first.base}/v1/sales/local-drop/reservations",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text + log.read_text()[-3000:]
        order_id = answer.json()["order_id"]
        wait_for(lambda: "LOCAL-1" in first.cli("sale", "list") and _pending(first) == 1)
        pids = first.interrupt()
    finally:
        first.kill()
    assert len(pids) >= 6  # up, redis, postgres and its helpers, api, worker, reaper, sweeper
    assert not [pid for pid in pids if running(pid)]
    assert not (data_dir / "servers.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(first.base + "/healthz", timeout=2)

    second = Up(data_dir, log)
    try:
        wait_for(second.ready, timeout=120, every=0.3)
        listing = second.cli("sale", "list")
        row = next(line.split() for line in listing.splitlines() if line.startswith("local-drop"))
        assert row[3:6] == ["5", "4", "0"]  # total, remaining, reserved: stock survived
        order = httpx.get(
            f"{second.base}/v1/orders/{order_id}",
            headers={"Authorization": f"Bearer {second.cli('token', 'alice').strip()}"},
            timeout=10,
        )
        assert order.status_code == 200 and order.json()["status"] == "pending_payment"
        second.interrupt()
    finally:
        second.kill()


def _pending(up: Up) -> int:
    status = up.cli("sale", "status", "local-drop", "-o", "json")
    return int(json.loads(status)["stock"]["pending_payment"])


def test_a_second_up_on_the_same_folder_is_refused(data_dir: Path) -> None:
    log = data_dir.parent / "up.log"
    first = Up(data_dir, log)
    try:
        wait_for(first.ready, timeout=120, every=0.3)
        clash = subprocess.run(
            [FLASHSALE, "up", "--port", str(free_port())],
            env=first.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert clash.returncode != 0
        assert "already runs" in clash.stderr
        assert first.ready()  # the first one is untouched
        assert (data_dir / "servers.json").exists()
        first.interrupt()
    finally:
        first.kill()


def time_wait_on(port: int) -> int:
    """Sockets on local port `port` in TIME-WAIT (state 06 in /proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "06" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_operator_finds_the_servers_of_up_through_the_data_folder(data_dir: Path) -> None:
    up = Up(data_dir, data_dir.parent / "up.log")
    try:
        wait_for(up.ready, timeout=120, every=0.3)
        # With only the data folder, the operator gets past its settings to logging in to
        # Kubernetes (there is none here, so it keeps trying).
        operator = Process(
            [FLASHSALE, "operator", "--liveness", ""],
            up.env | {"KUBECONFIG": str(data_dir.parent / "no-kubeconfig")},
            log=data_dir.parent / "operator.log",
        ).start()
        try:
            wait_for(lambda: "login" in operator.output(), timeout=60)
            assert operator.alive(), operator.output()
        finally:
            operator.stop(signal.SIGKILL)
        assert "FLASHSALE_REDIS_URL is not set" not in operator.output()
        up.interrupt()
    finally:
        up.kill()


def test_up_starts_again_at_once_on_the_same_port(data_dir: Path) -> None:
    log = data_dir.parent / "up.log"
    first = Up(data_dir, log)
    try:
        wait_for(first.ready, timeout=120, every=0.3)
        # A connection the server closes first leaves TIME-WAIT on the API's port.
        with httpx.Client(base_url=first.base, timeout=5) as client:
            assert client.get("/healthz").status_code == 200
            first.interrupt()
        assert time_wait_on(first.port) > 0
    finally:
        first.kill()
    second = Up(data_dir, log, port=first.port)
    try:
        wait_for(second.ready, timeout=120, every=0.3)
        second.interrupt()
    finally:
        second.kill()
    assert "is taken" not in log.read_text()
