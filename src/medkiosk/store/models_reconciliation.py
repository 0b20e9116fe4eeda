"""Tables for daily reconciliation of payments against the channel, HIS and insurance."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base, Money, PaymentOrder, PaymentStep


class ReconciliationRun(Base):
    """One reconciliation of a business day; a day may be run again (each run keeps its own findings).

    ``schedule_key`` is the day for the daily background run and NULL otherwise: unique, so when
    several copies of the service wake at the same minute only one of them runs the day.
    """

    __tablename__ = "reconciliation_runs"
    __table_args__ = (Index("ix_reconciliation_runs_day", "business_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    business_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), doc="running, succeeded or failed")
    triggered_by: Mapped[str] = mapped_column(String(80), doc="schedule, cli, or staff:<username>")
    schedule_key: Mapped[str | None] = mapped_column(String(10), unique=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str] = mapped_column(Text, default="")
    figures: Mapped[dict] = mapped_column(default=dict, doc="counts and totals of each side, as strings")
    discrepancy_count: Mapped[int] = mapped_column(Integer, default=0)


class ReconciliationDiscrepancy(Base):
    """A one-sided entry or mismatch found by a run, the fix suggested, and how finance resolved it."""

    __tablename__ = "reconciliation_discrepancies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id"), index=True)
    source: Mapped[str] = mapped_column(String(12), doc="channel, his or insurance")
    kind: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(10))
    reference: Mapped[str] = mapped_column(String(64), index=True)
    order_no: Mapped[str | None] = mapped_column(String(32))
    ours: Mapped[Decimal | None] = mapped_column(Money())
    theirs: Mapped[Decimal | None] = mapped_column(Money())
    message: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(60))
    resolution_note: Mapped[str | None] = mapped_column(Text)


# Reconciliation reads a day of orders and journal steps by time; the payments tables had no such index.
Index("ix_payment_orders_created_at", PaymentOrder.created_at)
Index("ix_payment_steps_step_started", PaymentStep.step, PaymentStep.started_at)
