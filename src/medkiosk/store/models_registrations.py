"""Tables for registrations (挂号) made or picked up at a kiosk, and their slips' reprints."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base


class KioskRegistration(Base):
    """A number held, paid and registered at a kiosk: which HIS registration, paid by which order.

    The HIS owns the numbers (it also sells them at the windows and in the app) and decides the
    last one; this row is the kiosk's memory of its part: the idempotency key its hold was sent
    with, the payment order that pays the fee, and what it printed.
    """

    __tablename__ = "kiosk_registrations"
    __table_args__ = (Index("ix_kiosk_registrations_patient_day", "patient_id", "day"),
                      Index("ix_kiosk_registrations_registration_no", "registration_no"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True,
                                                 doc="sent with the HIS hold: a retry holds nothing twice")
    registration_no: Mapped[str | None] = mapped_column(
        String(40), doc="not unique: an appointment picked up, left unpaid and picked up again keeps its number")
    kind: Mapped[str] = mapped_column(String(12), doc="same_day, advance or pick_up")
    state: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    his_patient_id: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str] = mapped_column(String(36))
    schedule_id: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    half_day: Mapped[str] = mapped_column(String(2))
    visit_no: Mapped[str | None] = mapped_column(String(40))
    order_no: Mapped[str | None] = mapped_column(String(40), doc="the payment order paying the fee")
    fee: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    queue_no: Mapped[int | None] = mapped_column(Integer)
    hold_until: Mapped[datetime | None]
    details: Mapped[dict] = mapped_column(default=dict, doc="department, doctor, place, window: for the slip")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
