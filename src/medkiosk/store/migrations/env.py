"""Alembic environment: the URL comes from the config that medkiosk.store.migrate builds."""

from alembic import context

from medkiosk.store.db import make_engine
from medkiosk.store import (  # noqa: F401  (each module registers its tables on Base.metadata)
    models_departments,
    models_exams,
    models_operations,
    models_pos,
    models_queues,
    models_reconciliation,
    models_registrations,
    models_releases,
    models_tickets,
)
from medkiosk.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
