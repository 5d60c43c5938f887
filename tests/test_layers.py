"""The package's structure as rules a change cannot silently break: the import layers
(pyproject's [tool.importlinter], run by `make lint` and here), and sale keys spelled only
by the stock package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "flashsale"
KEY_LITERAL = re.compile(r"""[fbr]?["']fs:\{""")  # a string that starts a sale's key


def test_import_layers_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_only_the_stock_package_spells_a_sale_key() -> None:
    spelled = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "stock"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if KEY_LITERAL.search(line)
    ]
    assert spelled == []


def test_no_module_outside_tests_is_over_350_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 350
    }
    assert long == {}
