"""The one registry of Lua scripts: every script the package ships is registered, each
documents its KEYS, ARGV and answer in its header."""

from __future__ import annotations

import pytest

from flashsale.stock.scripts import Scripts, lua_source, script_files


def test_every_shipped_script_is_registered_and_nothing_else() -> None:
    assert Scripts.names() == script_files()


@pytest.mark.parametrize("name", sorted(script_files()))
def test_each_script_opens_with_its_contract(name: str) -> None:
    header = []
    for line in lua_source(name).splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    text = "\n".join(header)
    assert header and header[0].startswith(f"-- {name}.lua:"), header[:1]
    assert "KEYS[1]" in text and ("ARGV[" in text or name == "close")
    assert "Returns" in text or "returns" in text.lower()
