"""Throwaway PostgreSQL databases, for the test suite, the chaos test and the benchmarks.

Through SQLAlchemy and the service's own driver (``store.db.normalise_url``), so that nothing but
the service's dependencies is needed to make one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import Row, make_url
from sqlalchemy.pool import NullPool

from medkiosk.store.db import normalise_url


def server_statement(server_url: str, sql: str, params: Mapping[str, Any] | None = None) -> Sequence[Row]:
    """Run one statement outside any transaction (CREATE/DROP DATABASE need that); its rows, if any."""
    engine = create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool,
                           connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql), dict(params or {}))
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def server_answers(server_url: str) -> bool:
    try:
        server_statement(server_url, "SELECT 1")
        return True
    except exc.OperationalError:
        return False


def create_database(server_url: str, prefix: str, *, template: str | None = None) -> tuple[str, Callable[[], None]]:
    """A new, empty database (or a copy of ``template``) on the server of ``server_url``: its URL,
    and the function that drops it (connections still open to it are ended)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server_statement(server_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

    def drop() -> None:
        server_statement(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop
