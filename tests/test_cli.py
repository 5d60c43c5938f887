"""The command line as users type it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jwt
import pytest

from flashsale.stock.keys import SaleKeys
from tests.conftest import FLASHSALE, JWT_SECRET, Platform


def run(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASHSALE, *args], env=platform.env, capture_output=True, text=True, timeout=60
    )


def test_token_is_signed_for_the_user(platform: Platform) -> None:
    out = run(platform, "token", "zoe", "--ttl", "60")
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "zoe" and claims["exp"] - claims["iat"] == 60


def test_sale_apply_and_status(platform: Platform, workdir: Path) -> None:
    path = workdir / "sales.yaml"
    path.write_text(
        "apiVersion: flashsale.dev/v1alpha1\nkind: FlashSale\nmetadata: {name: cli-one}\n"
        "spec: {sku: A-1, stock: 7}\n---\n"
        "apiVersion: flashsale.dev/v1alpha1\nkind: FlashSale\nmetadata: {name: cli-two}\n"
        "spec: {sku: B-2, stock: 3, perUserLimit: 2}\n"
    )
    out = run(platform, "sale", "apply", "-f", str(path))
    assert out.returncode == 0, out.stderr
    assert platform.remaining("cli-one") == 7 and platform.remaining("cli-two") == 3
    status = run(platform, "sale", "status", "cli-two", "-o", "json")
    assert json.loads(status.stdout)["stock"]["total"] == 3


def test_sale_apply_refuses_a_bad_spec_and_applies_nothing(
    platform: Platform, workdir: Path
) -> None:
    path = workdir / "bad.yaml"
    path.write_text(
        "metadata: {name: cli-good}\nspec: {sku: A, stock: 1}\n---\n"
        "metadata: {name: cli-bad}\nspec: {sku: B, stock: -1}\n"
    )
    out = run(platform, "sale", "apply", "-f", str(path))
    assert out.returncode != 0
    assert "cli-bad" in out.stderr and "stock" in out.stderr
    assert platform.redis.exists(SaleKeys("cli-good").meta) == 0


def test_sale_list_and_status_tables(platform: Platform) -> None:
    name = platform.sale(stock=4, sku="TABLE-1")
    listing = run(platform, "sale", "list")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split() == [
        "NAME", "SKU", "PHASE", "TOTAL", "REMAINING", "RESERVED", "PENDING", "PAID",
    ]  # fmt: skip
    assert [name, "TABLE-1", "Active", "4", "4", "0", "0", "0"] in [r.split() for r in rows]
    status = run(platform, "sale", "status", name)
    assert "Phase:   Active" in status.stdout and "remaining         4" in status.stdout
    missing = run(platform, "sale", "status", "no-such-sale")
    assert missing.returncode == 1 and "no sale named 'no-such-sale'" in missing.stderr


def test_sale_apply_names_the_bad_field(platform: Platform, workdir: Path) -> None:
    path = workdir / "unknown-field.yaml"
    path.write_text("metadata: {name: cli-typo}\nspec: {sku: A, stock: 1, stok: 2}\n")
    out = run(platform, "sale", "apply", "-f", str(path))
    assert out.returncode == 1
    assert "spec.stok: Extra inputs are not permitted (unknown field)" in out.stderr
    assert platform.redis.exists(SaleKeys("cli-typo").meta) == 0


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["", "--ttl", "60"], "Invalid value for 'USER': a user id must not be empty"),
        (["   "], "a user id must not be only whitespace"),
        (["a\tb"], "must not contain U+0009"),
        (["del\x7f"], "must not contain U+007F"),
        (["x" * 256], "at most 255 characters"),
        (["alice", "--ttl", "-5"], "Invalid value for '--ttl'"),
        (["alice", "--ttl", "0"], "Invalid value for '--ttl'"),
    ],
)
def test_token_refuses_what_the_api_would_refuse(
    platform: Platform, args: list[str], complaint: str
) -> None:
    out = run(platform, "token", *args)
    assert out.returncode == 2, out.stdout
    assert complaint in out.stderr
    assert out.stdout == ""


def test_token_ttl_is_held_to_the_lifetime_cap(platform: Platform) -> None:
    env = {**platform.env, "FLASHSALE_MAX_TOKEN_LIFETIME_SECONDS": "600"}
    over = subprocess.run(
        [FLASHSALE, "token", "zoe", "--ttl", "601"], env=env, capture_output=True, text=True
    )
    assert over.returncode == 2
    assert "over FLASHSALE_MAX_TOKEN_LIFETIME_SECONDS (600)" in over.stderr
    default = subprocess.run([FLASHSALE, "token", "zoe"], env=env, capture_output=True, text=True)
    assert default.returncode == 0, default.stderr
    claims = jwt.decode(default.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 600  # the cap, under the usual hour


def test_token_accepts_ids_with_inner_spaces_and_non_ascii(platform: Platform) -> None:
    out = run(platform, "token", "Zoë O'Neil 🛒")
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "Zoë O'Neil 🛒"
