"""Storage on SQLite and PostgreSQL: migrations, the unit of work, constraints."""

from datetime import datetime, timezone

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from medkiosk.store.db import make_engine, make_session_factory
from medkiosk.store.migrate import downgrade, upgrade
from medkiosk.store.models import Device, DeviceNonce
from medkiosk.store.uow import UnitOfWork

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def uow_factory(database_url):
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    yield lambda: UnitOfWork(factory)
    engine.dispose()


def device(device_id="K001"):
    return Device(id=device_id, terminal_type="outpatient", name="1号机", location="门诊楼", public_key="x",
                  enrolled_at=NOW)


def test_migrations_create_every_table_and_downgrade_cleanly(database_url):
    engine = make_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"devices", "device_nonces", "device_states", "patients", "kiosk_sessions", "events",
            "staff_users", "staff_sessions", "audit_log", "alembic_version"} <= tables
    engine.dispose()
    downgrade(database_url, "base")
    engine = make_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(database_url)


def test_work_is_kept_only_when_committed(uow_factory):
    with uow_factory() as uow:
        uow.session.add(device("K001"))
        uow.commit()
    with uow_factory() as uow:
        uow.session.add(device("K002"))  # left without commit
    with uow_factory() as uow:
        assert uow.session.scalars(select(Device.id)).all() == ["K001"]


def test_an_error_inside_the_unit_rolls_everything_back(uow_factory):
    with pytest.raises(RuntimeError):
        with uow_factory() as uow:
            uow.session.add(device("K003"))
            uow.session.flush()
            raise RuntimeError("boom")
    with uow_factory() as uow:
        assert uow.session.get(Device, "K003") is None


def test_the_store_refuses_a_nonce_seen_before(uow_factory):
    with uow_factory() as uow:
        uow.session.add(DeviceNonce(device_id="K001", nonce="abcdef0123456789", seen_at=NOW))
        uow.commit()
    with uow_factory() as uow:
        uow.session.add(DeviceNonce(device_id="K001", nonce="abcdef0123456789", seen_at=NOW))
        with pytest.raises(IntegrityError):
            uow.commit()


def test_a_write_marked_without_flush_wait_is_kept_and_only_that_transaction_is_relaxed(uow_factory, database_url):
    postgres = database_url.startswith("postgresql")
    with uow_factory() as uow:
        uow.without_flush_wait()
        if postgres:
            assert uow.session.connection().exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        uow.session.add(device("K009"))
        uow.commit()
    with uow_factory() as uow:
        assert uow.session.get(Device, "K009") is not None  # committed like any other write
        if postgres:  # SET LOCAL: the pooled connection's next transaction waits for the flush again
            assert uow.session.connection().exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
