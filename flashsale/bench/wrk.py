"""Driving load with wrk and reading its result line."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flashsale.api.auth import issue_token

# The wrk script that sends the benchmark's requests, shipped as package data.
WRK_SCRIPT = importlib.resources.files("flashsale.bench") / "wrk.lua"


class ToolMissing(RuntimeError):
    """A program the benchmark drives is not installed; the message says how to get it."""


def require_tool(name: str, debian_package: str, brew_formula: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ToolMissing(
            f"{name} not found: install it (Debian/Ubuntu: apt-get install {debian_package}; "
            f"macOS: brew install {brew_formula}), or run `make bench`, which installs it "
            "with apt-get when root"
        )
    return found


def find_wrk() -> str:
    return require_tool("wrk", "wrk", "wrk")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    status: dict[int, int] = field(default_factory=dict)
    client_cpu_seconds: float = 0.0  # wrk's own CPU time: it shares the machine

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def unexpected(self, expected: int) -> int:
        """Answers other than `expected`, plus socket errors."""
        return self.socket_errors + sum(n for code, n in self.status.items() if code != expected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "socket_errors": self.socket_errors,
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "wrk_cpu_us_per_request": round(
                self.client_cpu_seconds * 1e6 / max(1, sum(self.status.values())), 1
            ),
        }


def parse_result(output: str) -> WrkResult:
    line = next((ln for ln in output.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    raw = json.loads(line[len("RESULT ") :])
    status: dict[int, int] = {}
    for code, count in raw["status"]:
        status[int(code)] = status.get(int(code), 0) + int(count)
    errors = raw["socket_errors"]
    return WrkResult(
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        # Timeouts are counted separately by wrk, the others cut the connection.
        socket_errors=int(errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]),
        status=status,
    )


def write_tokens(path: Path, secret: str, users: int, prefix: str = "shopper") -> Path:
    """One JWT per line, a different user each, valid for two hours."""
    path.write_text(
        "".join(issue_token(secret, f"{prefix}-{i}", 7200) + "\n" for i in range(users))
    )
    return path


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk invocation's shape."""

    url: str
    connections: int
    seconds: float
    method: str = "POST"
    tokens: Path | None = None
    body: str | None = None
    idempotency_keys: bool = False
    threads: int = 2
    paths: Path | None = None  # a file of request paths, one taken at random per request


def run_wrk(load: Load, nonce: str) -> WrkResult:
    env = {**os.environ, "BENCH_METHOD": load.method, "BENCH_NONCE": nonce}
    if load.tokens:
        env["BENCH_TOKENS"] = str(load.tokens)
    if load.body:
        env["BENCH_BODY"] = load.body
    if load.idempotency_keys:
        env["BENCH_IDEM"] = "1"
    if load.paths:
        env["BENCH_PATHS"] = str(load.paths)
    threads = min(load.threads, load.connections)
    env["BENCH_THREADS"] = str(threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with importlib.resources.as_file(WRK_SCRIPT) as script:
        cmd = [
            find_wrk(),
            f"-t{threads}",
            f"-c{load.connections}",
            f"-d{max(1, round(load.seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            load.url,
        ]
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=load.seconds + 60, check=False
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return dataclasses.replace(parse_result(done.stdout), client_cpu_seconds=cpu)
