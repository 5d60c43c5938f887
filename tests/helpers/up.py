"""`flashsale up` run as a user runs it: in the background, nothing configured but its
data folder, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from flashsale.embedded import free_port
from flashsale.local.process import Process
from tests.conftest import FLASHSALE, descendants


def local_env(data_dir: Path) -> dict[str, str]:
    """Nothing configured but the data folder, as on a newcomer's machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env | {"FLASHSALE_DATA_DIR": str(data_dir)}


class Up(Process):
    """`flashsale up` with one API process, started at once, its output in `log`."""

    def __init__(self, data_dir: Path, log: Path, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        command = [FLASHSALE, "up", "--port", str(self.port), "--api-workers", "1"]
        super().__init__(command, local_env(data_dir) | env, log=log)
        self.base = f"http://127.0.0.1:{self.port}"
        self.start()

    @property
    def main(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None
        return self.proc

    def ready(self) -> bool:
        assert self.main.poll() is None, self.output()
        try:
            return httpx.get(self.base + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [FLASHSALE, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def interrupt(self) -> set[int]:
        """Ctrl-C (to `up` alone, as a terminal's would reach it: its children run in
        sessions of their own); returns the processes that ran under `up` just before."""
        pids = descendants(self.main.pid) | {self.main.pid}
        self.main.send_signal(signal.SIGINT)
        assert self.main.wait(60) == 0, self.output()
        return pids

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
