"""Shared fixtures: no stray network, databases (SQLite and PostgreSQL), migrated schemas."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from medkiosk.store.scratch import create_database, server_answers

# --- no call-out: a hospital intranet is closed, so is the test run -------------------------------
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests may not reach {address!r}: hospital intranets are closed")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests may not reach {address!r}: hospital intranets are closed")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


# --- PostgreSQL: the machine's server when it answers, else a throwaway cluster --------------------
def _pg_binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


class _ThrowawayCluster:
    """initdb + pg_ctl in a temporary folder, as the postgres user when we run as root."""

    def __init__(self) -> None:
        from medkiosk.serving import free_port

        self.bin = _pg_binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not running on 127.0.0.1:5432 and no initdb/pg_ctl was found")
        self.dir = Path(tempfile.mkdtemp(prefix="medkiosk-pg-"))
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url():
    url = os.environ.get("MEDKIOSK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if server_answers(url):
        yield url
        return
    cluster = _ThrowawayCluster()
    deadline = time.monotonic() + 30
    while not server_answers(cluster.url):
        if time.monotonic() > deadline:
            raise RuntimeError("throwaway PostgreSQL did not start")
        time.sleep(0.2)
    try:
        yield cluster.url
    finally:
        cluster.stop()


# Migrating a database takes longer than copying one: each run migrates one database per kind
# once, and every test gets a copy of it (PostgreSQL: CREATE DATABASE … TEMPLATE; SQLite: the
# file, by SQLite's backup API). tests/integration/test_store.py runs the migrations down to
# nothing and up again on both.
@pytest.fixture(scope="session")
def _migrated_postgres(postgres_server_url):
    from medkiosk.store.migrate import upgrade

    url, drop = create_database(postgres_server_url, "medkiosk_test")
    upgrade(url)  # its engine is disposed at the end: no session left to block copying
    try:
        yield make_url(url).database
    finally:
        drop()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory) -> Path:
    from medkiosk.store.migrate import upgrade

    path = tmp_path_factory.mktemp("migrated") / "medkiosk.db"
    upgrade(f"sqlite:///{path}")
    return path


def _sqlite_copy(template: Path, folder: Path) -> str:
    import sqlite3

    target = folder / "medkiosk.db"
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A migrated, empty database: each test that uses it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield _sqlite_copy(request.getfixturevalue("_migrated_sqlite"), tmp_path)
        return
    url, drop = create_database(request.getfixturevalue("postgres_server_url"), "medkiosk_test",
                                template=request.getfixturevalue("_migrated_postgres"))
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def sqlite_url(tmp_path, _migrated_sqlite):
    return _sqlite_copy(_migrated_sqlite, tmp_path)
