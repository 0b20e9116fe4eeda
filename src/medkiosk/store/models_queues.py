"""Tables for check-in and waiting queues: each department's rules, its queue of the day, the calls."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base


class QueueDepartment(Base):
    """A department's queue settings, as the hospital sets them (defaults when there is no row)."""

    __tablename__ = "queue_departments"

    department_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    zone: Mapped[str] = mapped_column(String(100), default="", doc="the waiting area whose board shows it")
    rules: Mapped[dict] = mapped_column(default=dict, doc="domain.queues.QueueRules.to_json()")
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(60), default="")


class QueueHead(Base):
    """One department's queue of one day. Every change locks this row first (SELECT … FOR UPDATE),
    so two kiosks or doctors never interleave; ``version`` tells boards something moved."""

    __tablename__ = "queue_heads"

    department_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    queue_date: Mapped[date] = mapped_column(Date, primary_key=True)
    next_no: Mapped[int] = mapped_column(Integer, default=1, doc="for entries whose source gave no number")
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class QueueEntryRow(Base):
    """A patient's place in a department's queue of a day; one per registration or exam appointment."""

    __tablename__ = "queue_entries"
    __table_args__ = (UniqueConstraint("source", "reference", name="uq_queue_entry_source"),
                      Index("ix_queue_entries_queue", "department_code", "queue_date", "state"),
                      Index("ix_queue_entries_his_state", "his_state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    department_code: Mapped[str] = mapped_column(String(40))
    department_name: Mapped[str] = mapped_column(String(100), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    queue_date: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16), doc="registration or exam")
    reference: Mapped[str] = mapped_column(String(64), doc="the registration or exam appointment number")
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    his_patient_id: Mapped[str] = mapped_column(String(40))
    masked_name: Mapped[str] = mapped_column(String(20), doc="masked (张*明): what boards and doctors see")
    queue_no: Mapped[str] = mapped_column(String(20))
    half_day: Mapped[str] = mapped_column(String(2))
    slot_start: Mapped[datetime | None]
    slot_end: Mapped[datetime | None]
    doctor_code: Mapped[str | None] = mapped_column(String(40), doc="only this doctor calls it (expert)")
    doctor_name: Mapped[str] = mapped_column(String(50), default="")
    state: Mapped[str] = mapped_column(String(12))
    flags: Mapped[list] = mapped_column(default=list)
    age: Mapped[int | None] = mapped_column(Integer)
    checked_in_at: Mapped[datetime]
    rejoin_kind: Mapped[str | None] = mapped_column(String(12))
    rejoin_at: Mapped[datetime | None]
    rejoin_behind: Mapped[int | None] = mapped_column(Integer)
    missed_count: Mapped[int] = mapped_column(Integer, default=0)
    call_count: Mapped[int] = mapped_column(Integer, default=0)
    room: Mapped[str | None] = mapped_column(String(40))
    called_at: Mapped[datetime | None]
    called_by: Mapped[str | None] = mapped_column(String(60))
    done_at: Mapped[datetime | None]
    device_id: Mapped[str | None] = mapped_column(String(32))
    his_state: Mapped[str] = mapped_column(String(12), default="pending",
                                           doc="pending until the HIS confirms the check-in, then told")
    his_attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class QueueCall(Base):
    """A call (or recall) to a room: what boards announce, newest last."""

    __tablename__ = "queue_calls"
    __table_args__ = (Index("ix_queue_calls_department", "department_code", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    department_code: Mapped[str] = mapped_column(String(40))
    queue_date: Mapped[date] = mapped_column(Date)
    entry_id: Mapped[int] = mapped_column(ForeignKey("queue_entries.id"))
    queue_no: Mapped[str] = mapped_column(String(20))
    masked_name: Mapped[str] = mapped_column(String(20))
    room: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(8), doc="call or recall")
    text: Mapped[str] = mapped_column(String(200), doc="the voice call: 请 3 号 张*明 到 2 诊室就诊")
    called_by: Mapped[str] = mapped_column(String(60), default="")
    at: Mapped[datetime]
