"""Tables for exam appointments and document reprints."""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base


class ExamSlot(Base):
    """Places taken in one resource's window on one day: the unit of capacity (locked to book)."""

    __tablename__ = "exam_slots"
    __table_args__ = (UniqueConstraint("resource_code", "day", "start", name="uq_exam_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_code: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    start: Mapped[time] = mapped_column(Time)
    capacity: Mapped[int] = mapped_column(Integer, doc="the configured capacity when last booked")
    booked: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class ExamBooking(Base):
    """The booking of one HIS exam order (one row per order: cancelled and booked again in place)."""

    __tablename__ = "exam_bookings"
    __table_args__ = (Index("ix_exam_bookings_patient_state", "patient_id", "state"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, doc="also the booking_ref told to the HIS")
    order_no: Mapped[str] = mapped_column(String(40), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    his_patient_id: Mapped[str] = mapped_column(String(40))
    exam_type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(12))
    resource_code: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    start: Mapped[time] = mapped_column(Time)
    end: Mapped[time] = mapped_column(Time)
    moves: Mapped[int] = mapped_column(Integer, default=0)
    his_synced: Mapped[bool] = mapped_column(Boolean, default=False, doc="the HIS knows the current state")
    device_id: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict] = mapped_column(default=dict, doc="exam name, place, preparation, check-in: for the slip")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class ExamBookingEvent(Base):
    """What happened to a booking, and where: booked, moved, cancelled, refused by the HIS."""

    __tablename__ = "exam_booking_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("exam_bookings.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    device_id: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict] = mapped_column(default=dict)
    at: Mapped[datetime]


class DocumentPrint(Base):
    """Each A4 print of a document from the HIS (requisition, prescription, report): the reprint log.

    ``seq`` numbers the prints of one document; (doc_key, seq) is unique, so two kiosks printing the
    same report at once cannot both print the original.
    """

    __tablename__ = "document_prints"
    __table_args__ = (UniqueConstraint("doc_key", "seq", name="uq_document_print_seq"),
                      Index("ix_document_prints_patient", "patient_id", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_key: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    doc_no: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(60), default="")
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    copy: Mapped[bool] = mapped_column(Boolean, doc="marked as a copy (补打/复印件)")
    state: Mapped[str] = mapped_column(String(12), doc="issued, printed or failed")
    device_id: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
