"""The chart and the code agree: every command line the chart runs parses with the real CLI,
and every FLASHSALE_* variable it sets is a setting the code reads."""

from __future__ import annotations

from typing import Any

import click
import pytest

from flashsale.cli import main
from flashsale.operator.settings import OperatorSettings
from flashsale.settings import Settings
from tests.chart.conftest import CHART, Render, env_of, pod_spec

VALUES = [(), *[(p.name,) for p in sorted((CHART / "ci").glob("*.yaml"))]]


def flashsale_containers(render: Render, values: tuple[str, ...]) -> list[dict[str, Any]]:
    boxes = []
    for obj in render(*values).objects:
        if obj["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}:
            for box in pod_spec(obj)["containers"]:
                if box["image"].startswith("flashsale:") and "command" not in box:
                    boxes.append(box)
    return boxes


def settings_variables() -> set[str]:
    common = {f"FLASHSALE_{name.upper()}" for name in Settings.model_fields}
    operator = {f"FLASHSALE_OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields}
    return common | operator


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v[0] if v else "default")
def test_every_command_line_parses(render: Render, values: tuple[str, ...]) -> None:
    boxes = flashsale_containers(render, values)
    assert boxes
    for box in boxes:
        name, *args = box["args"]
        command = main.get_command(click.Context(main), name)
        assert command is not None, f"flashsale has no command {name!r}"
        # Parses the options exactly as the container passes them; unknown ones raise.
        command.make_context(name, list(args))


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v[0] if v else "default")
def test_every_variable_is_a_setting(render: Render, values: tuple[str, ...]) -> None:
    known = settings_variables()
    for box in flashsale_containers(render, values):
        for variable in env_of(box):
            assert variable in known, f"{variable} is read by no settings class"


def test_an_unknown_option_would_be_caught() -> None:
    command = main.get_command(click.Context(main), "api")
    assert command is not None
    with pytest.raises(click.NoSuchOption):
        command.make_context("api", ["--bind", "0.0.0.0"])
