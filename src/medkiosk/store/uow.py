"""Unit of work: one transaction, rolled back unless committed."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker


class UnitOfWork:
    """``with uow_factory() as uow: ...; uow.commit()`` — leaving the block without commit rolls back."""

    def __init__(self, session_factory: sessionmaker[Session], relaxed: Engine | None = None) -> None:
        """``relaxed``: the engine for ``core(flush_wait=False)`` (``store.db.make_relaxed_engine``);
        without it such a transaction starts with ``SET LOCAL synchronous_commit = off``."""
        self._session_factory = session_factory
        self._relaxed = relaxed
        self.session: Session

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(self, *exc) -> None:
        # close() rolls back whatever was not committed and detaches the objects with the values
        # they were loaded with (a rollback() first would expire them, so reading one after the
        # block would fail).
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def without_flush_wait(self) -> None:
        """Let this transaction's commit return before the WAL is on disk (PostgreSQL's
        ``synchronous_commit = off`` for this transaction only; SQLite is unchanged).

        A crash of the database server can then lose the last fraction of a second of such commits,
        never corrupt anything; any later synchronous commit flushes them too. Only for writes whose
        loss is harmless or redone: a lease (it would expire), a session's last-activity time, a
        request nonce, a write recovery repeats idempotently — never one that must be on disk
        before an external call is made.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            # Straight to the driver: no statement to compile or cache on every hot-path write.
            self.session.connection().exec_driver_sql("SET LOCAL synchronous_commit = off")

    def rollback(self) -> None:
        self.session.rollback()

    @contextmanager
    def core(self, *, flush_wait: bool = True) -> Iterator[Connection]:
        """One transaction on a plain connection, for Core statements on a hot path (no ORM session
        to build, no objects to track or flush): committed when the block ends, rolled back if it raises.

        ``flush_wait=False`` is ``without_flush_wait`` for this transaction, with the same limits.
        """
        if not flush_wait and self._relaxed is not None:
            with self._relaxed.begin() as connection:
                yield connection
            return
        with self._session_factory.kw["bind"].begin() as connection:
            if not flush_wait and connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield connection
