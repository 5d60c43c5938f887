"""The machine a benchmark ran on, as written into its results."""

from __future__ import annotations

import os
import platform as host
import subprocess
import sys
from pathlib import Path
from typing import Any

from flashsale.bench.wrk import find_wrk


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    wrk_version = subprocess.run([find_wrk(), "-v"], capture_output=True, text=True).stdout
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": _cpu_model(),
        "kernel": host.release(),
        "python": sys.version.split()[0],
        "wrk": " ".join(wrk_version.split()[:2]) if wrk_version else "wrk",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host.processor()
