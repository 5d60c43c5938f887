"""`flashsale migrate`: bring the schema to the newest revision."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config

from flashsale.db.engine import sqlalchemy_url


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("flashsale.db") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")
