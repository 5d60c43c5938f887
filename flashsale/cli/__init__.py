"""`flashsale`: one entry point for every component.

`group` holds the command group; `components` adds the components as containers run them
(api, worker, migrate, reap, sweep, operator) and `token`; `sales` the `sale` commands;
`local` the platform on this machine (`up`, `demo`); the benchmark brings `bench`."""

from __future__ import annotations

from flashsale.bench.command import bench
from flashsale.cli import components, local, sales
from flashsale.cli.group import main

main.add_command(bench, name="bench")

__all__ = ["components", "local", "main", "sales"]
