"""Tables of the kiosk service. Columns ending in ``_enc`` hold AES-GCM ciphertext (security.crypto)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class Money(TypeDecorator):
    """Yuan as ``Decimal`` in Python, whole fen (BIGINT) in the database: exact on SQLite too."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect) -> int | None:
        if value is None:
            return None
        fen = Decimal(value) * 100
        if fen != fen.to_integral_value():
            raise ValueError(f"{value} has a fraction of a fen")
        return int(fen)

    def process_result_value(self, value: int | None, dialect) -> Decimal | None:
        return None if value is None else (Decimal(value) / 100).quantize(Decimal("0.01"))


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict: JSON, list: JSON}


class Device(Base):
    """An enrolled kiosk or ward terminal and the public half of its key."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    terminal_type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    public_key: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    preview: Mapped[bool] = mapped_column(Boolean, default=False, doc="designated test kiosk for previews")
    enrolled_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class DeviceNonce(Base):
    """Nonces seen in signed requests, kept for longer than the allowed clock skew to refuse replays."""

    __tablename__ = "device_nonces"
    __table_args__ = (UniqueConstraint("device_id", "nonce", name="uq_device_nonce"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(index=True)


class DeviceState(Base):
    """A device's last heartbeat: what the operations platform shows as its current state."""

    __tablename__ = "device_states"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    last_seen_at: Mapped[datetime]
    software_version: Mapped[str] = mapped_column(String(40), default="")
    uptime_seconds: Mapped[int] = mapped_column(Integer, default=0)
    screen: Mapped[str] = mapped_column(String(60), default="")
    peripherals: Mapped[dict] = mapped_column(default=dict)


class Patient(Base):
    """A patient this service has identified; identifiers encrypted, found by keyed hashes."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    his_patient_id: Mapped[str] = mapped_column(String(40), unique=True)
    name_enc: Mapped[str] = mapped_column(Text)
    id_number_enc: Mapped[str | None] = mapped_column(Text)
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_enc: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str] = mapped_column(String(1), default="")
    birth_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KioskSession(Base):
    """A patient's time at one kiosk: bound to the device, ended by logout, expiry or a new patient."""

    __tablename__ = "kiosk_sessions"
    __table_args__ = (Index("ix_kiosk_sessions_device_open", "device_id", "ended_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    medium: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20))
    insured_region: Mapped[str] = mapped_column(String(6), default="")
    insurance_enc: Mapped[str | None] = mapped_column(Text, doc="encrypted JSON: psn_no, scheme, balance …")
    view: Mapped[dict] = mapped_column(default=dict, doc="what the kiosk page may see: masked only")
    started_at: Mapped[datetime]
    last_activity_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(20))


class Event(Base):
    """Something staff should see: a call for help, a refused identification, a refused device request."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_kind_created", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10), default="info")
    device_id: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(60))


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(60), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class StaffSession(Base):
    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Tamper-evident trail: each entry's hash covers the previous entry's hash."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(120), default="")
    details: Mapped[dict] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class PaymentOrder(Base):
    """One bill a patient pays at a kiosk, and where it stands in the money state machine.

    Written before and after every external call; ``lease_*`` says which worker drives it now, so
    the patient's own request and the recovery worker never drive the same order at once.
    """

    __tablename__ = "payment_orders"
    __table_args__ = (Index("ix_payment_orders_state_lease", "state", "lease_until"),
                      Index("ix_payment_orders_patient", "patient_id", "created_at"),
                      Index("ix_payment_orders_followups", "visit_state", "invoice_state"))

    order_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    his_patient_id: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str] = mapped_column(String(36))
    visit_no: Mapped[str] = mapped_column(String(40))
    his_order_nos: Mapped[list] = mapped_column(default=list)
    mode: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    pay_method: Mapped[str | None] = mapped_column(String(16))
    his_total: Mapped[Decimal] = mapped_column(Money())
    total: Mapped[Decimal | None] = mapped_column(Money())
    fund: Mapped[Decimal | None] = mapped_column(Money())
    account: Mapped[Decimal | None] = mapped_column(Money())
    cash: Mapped[Decimal | None] = mapped_column(Money())
    paid_amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    refunded_amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    insurance_enc: Mapped[str | None] = mapped_column(Text, doc="encrypted JSON: certificate and person")
    mdtrt_id: Mapped[str | None] = mapped_column(String(40))
    chrg_bchno: Mapped[str | None] = mapped_column(String(40))
    setl_id: Mapped[str | None] = mapped_column(String(40))
    out_trade_no: Mapped[str | None] = mapped_column(String(40), unique=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    receipt_no: Mapped[str | None] = mapped_column(String(40))
    invoice_no: Mapped[str | None] = mapped_column(String(40))
    invoice_state: Mapped[str] = mapped_column(String(12), default="none")
    visit_state: Mapped[str] = mapped_column(String(12), default="none", server_default="none",
                                             doc="the insurance visit (2201): none, open, kept or withdrawn")
    active_key: Mapped[str | None] = mapped_column(
        String(90), unique=True, doc="patient:visit while the order is unfinished: one order in flight per visit")
    anomaly: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict] = mapped_column(default=dict, doc="masked display data: items, split lines")
    pay_deadline: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PaymentStep(Base):
    """The write-ahead journal: each external call of an order, recorded before it is made.

    ``key`` is the call's idempotency key (a msgid for insurance, out_trade_no / out_refund_no for
    the channel, the posting key for HIS); it is unique, so one key is never used for two calls.
    """

    __tablename__ = "payment_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_no"), index=True)
    step: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(12))
    detail: Mapped[dict] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
