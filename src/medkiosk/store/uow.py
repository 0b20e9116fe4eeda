"""Unit of work: one transaction, rolled back unless committed."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker


class UnitOfWork:
    """``with uow_factory() as uow: ...; uow.commit()`` — leaving the block without commit rolls back."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
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

    def rollback(self) -> None:
        self.session.rollback()
