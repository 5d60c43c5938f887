"""How commands find a running local platform, and its signing key."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from flashsale.datadir import (
    PlatformRecord,
    forget_servers,
    local_jwt_secret,
    record_servers,
    running_servers,
)
from flashsale.settings import Settings


def test_servers_of_a_running_platform_are_found(tmp_path: Path) -> None:
    record = PlatformRecord("redis://127.0.0.1:1/0", "postgresql://x@127.0.0.1:2/db", os.getpid())
    record_servers(tmp_path, record)
    assert running_servers(tmp_path) == record
    settings = Settings(data_dir=tmp_path).with_local_platform()
    assert (settings.redis_url, settings.database_url) == (record.redis_url, record.database_url)
    forget_servers(tmp_path)
    assert running_servers(tmp_path) is None


def test_a_stale_record_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    record_servers(tmp_path, PlatformRecord("redis://a", "postgresql://b", gone.pid))
    assert running_servers(tmp_path) is None
    assert Settings(data_dir=tmp_path).with_local_platform().redis_url is None
    (tmp_path / "servers.json").write_text("{not json")
    assert running_servers(tmp_path) is None


def test_configured_urls_win_over_the_local_platform(tmp_path: Path) -> None:
    record_servers(tmp_path, PlatformRecord("redis://local", "postgresql://local", os.getpid()))
    settings = Settings(data_dir=tmp_path, redis_url="redis://mine").with_local_platform()
    assert settings.redis_url == "redis://mine"
    assert settings.database_url == "postgresql://local"


def test_local_signing_key_is_private_and_stable(tmp_path: Path) -> None:
    assert local_jwt_secret(tmp_path) is None
    secret = local_jwt_secret(tmp_path, create=True)
    assert secret and len(secret) == 64
    assert local_jwt_secret(tmp_path) == secret
    assert stat.S_IMODE((tmp_path / "jwt-secret").stat().st_mode) == 0o600
    settings = Settings(data_dir=tmp_path).with_local_platform()
    assert settings.require_jwt_secret() == secret
