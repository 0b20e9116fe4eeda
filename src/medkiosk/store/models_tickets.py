"""Tables for the operations platform: tickets, inspections and consumables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base


class Ticket(Base):
    """工单: a fault from report to verified fix, with its handling record (cause, action, parts).

    ``(source, source_ref)`` is unique: one ticket per alert and per inspection item, so pressing
    the button twice, or two engineers at once, makes one ticket.
    """

    __tablename__ = "ops_tickets"
    __table_args__ = (UniqueConstraint("source", "source_ref", name="uq_ops_tickets_source"),
                      Index("ix_ops_tickets_state", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    device_id: Mapped[str | None] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(16), doc="alert / inspection / manual")
    source_ref: Mapped[str | None] = mapped_column(String(64), doc="alert:<id>, inspection-item:<id>")
    priority: Mapped[str] = mapped_column(String(4))
    state: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(60))
    own_target_seconds: Mapped[int] = mapped_column(Integer)
    resolve_target_seconds: Mapped[int] = mapped_column(Integer)
    own_level: Mapped[str] = mapped_column(String(10), default="ok", doc="last level announced")
    resolve_level: Mapped[str] = mapped_column(String(10), default="ok")
    transitions: Mapped[list] = mapped_column(default=list, doc="[{at, state, by, note}], the first is creation")
    cause: Mapped[str] = mapped_column(Text, default="")
    action: Mapped[str] = mapped_column(Text, default="")
    parts: Mapped[list] = mapped_column(default=list, doc="[{name, quantity}]")
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InspectionSlot(Base):
    """A time of day (hospital time, ``HH:MM``) at which an inspection round opens."""

    __tablename__ = "ops_inspection_slots"

    at: Mapped[str] = mapped_column(String(5), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]


class InspectionRound(Base):
    """One inspection round (巡检) of the whole fleet; ``slot_at`` unique: one round per scheduled time."""

    __tablename__ = "ops_inspection_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slot_at: Mapped[datetime] = mapped_column(unique=True, doc="the scheduled time (or when opened by hand)")
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(60), doc="schedule, or the person")
    state: Mapped[str] = mapped_column(String(16))
    signed_off_at: Mapped[datetime | None]


class InspectionItem(Base):
    """One device in a round: what the automatic check found and the engineer's sign-off."""

    __tablename__ = "ops_inspection_items"
    __table_args__ = (UniqueConstraint("round_id", "device_id", name="uq_ops_inspection_items_device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("ops_inspection_rounds.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(String(32), index=True)
    device_name: Mapped[str] = mapped_column(String(100), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    findings: Mapped[list] = mapped_column(default=list, doc="[{code, text}] from telemetry")
    verdict: Mapped[str | None] = mapped_column(String(10), doc="fine / problem once signed off")
    note: Mapped[str] = mapped_column(Text, default="")
    signed_by: Mapped[str | None] = mapped_column(String(60))
    signed_at: Mapped[datetime | None]
    ticket_id: Mapped[int | None] = mapped_column(Integer)


class ConsumableItem(Base):
    """A consumable kind and its stock in the store room."""

    __tablename__ = "ops_consumables"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    unit: Mapped[str] = mapped_column(String(8))
    printer: Mapped[str] = mapped_column(String(20))
    prints_per_unit: Mapped[int] = mapped_column(Integer)
    prints_per_transaction: Mapped[float]
    stock: Mapped[int] = mapped_column(Integer, default=0)
    low_stock: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class ConsumableMovement(Base):
    """Stock in (a delivery), out (a replacement on a device) or a count correction."""

    __tablename__ = "ops_consumable_movements"
    __table_args__ = (Index("ix_ops_consumable_movements_device", "device_id", "item_code", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_code: Mapped[str] = mapped_column(ForeignKey("ops_consumables.code"))
    kind: Mapped[str] = mapped_column(String(12), doc="receipt / replacement / count")
    quantity: Mapped[int] = mapped_column(Integer, doc="signed: a replacement is negative")
    stock_after: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime]
