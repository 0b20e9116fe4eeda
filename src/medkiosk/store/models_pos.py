"""Tables for the kiosks' bank POS settlement batches (批结算), as the agents report them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base, Money


class PosSettlementBatch(Base):
    """One settled batch of one kiosk's POS: the terminal's totals and its lines (JSON).

    Unique on the kiosk, the terminal, the batch number and the settlement time, so a batch the
    agent reports again (its reply was lost) is stored once; a terminal that restarts its batch
    numbers still stores each batch.
    """

    __tablename__ = "pos_settlement_batches"
    __table_args__ = (
        UniqueConstraint("device_id", "terminal_id", "batch_no", "settled_at", name="uq_pos_settlement_batch"),
        Index("ix_pos_settlement_batches_day", "business_date", "device_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32))
    terminal_id: Mapped[str] = mapped_column(String(32))
    batch_no: Mapped[str] = mapped_column(String(20))
    settled_at: Mapped[datetime] = mapped_column(doc="the terminal's time of the settlement, in UTC")
    business_date: Mapped[date] = mapped_column(Date, doc="the hospital day the batch closes")
    sale_count: Mapped[int] = mapped_column(Integer)
    sale_amount: Mapped[Decimal] = mapped_column(Money())
    void_count: Mapped[int] = mapped_column(Integer)
    void_amount: Mapped[Decimal] = mapped_column(Money())
    refund_count: Mapped[int] = mapped_column(Integer)
    refund_amount: Mapped[Decimal] = mapped_column(Money())
    net_amount: Mapped[Decimal] = mapped_column(Money())
    lines: Mapped[list] = mapped_column(default=list, doc="reference, kind, amount, key, original_reference, "
                                                          "approved_at; amounts as strings")
    received_at: Mapped[datetime]
