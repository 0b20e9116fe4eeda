"""Tables for operations platform: device ledger, telemetry, alerts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base


class LedgerRecord(Base):
    """台账: one kiosk or ward terminal as the IT centre records it, from commissioning to retirement.

    Keyed by the device id the agent will use; a record exists before the device is enrolled
    (commissioning), so there is no foreign key to ``devices``.
    """

    __tablename__ = "ops_ledger"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    asset_no: Mapped[str | None] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    terminal_type: Mapped[str] = mapped_column(String(16), default="outpatient")
    model: Mapped[str] = mapped_column(String(60), default="")
    vendor: Mapped[str] = mapped_column(String(60), default="")
    serial: Mapped[str] = mapped_column(String(60), default="")
    campus: Mapped[str] = mapped_column(String(40), default="")
    building: Mapped[str] = mapped_column(String(40), default="")
    floor: Mapped[str] = mapped_column(String(20), default="")
    area: Mapped[str] = mapped_column(String(60), default="")
    network: Mapped[dict] = mapped_column(default=dict, doc="ip, mac, vlan, switch_port")
    os: Mapped[str] = mapped_column(String(60), default="")
    software_version: Mapped[str] = mapped_column(String(40), default="")
    peripherals: Mapped[list] = mapped_column(default=list, doc="[{kind, model, serial, firmware}]")
    config: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="commissioning")
    commissioning: Mapped[dict] = mapped_column(default=dict, doc="{step: {by, at, note}}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DeviceTelemetry(Base):
    """A device's latest telemetry beyond ``device_states``: load, counters as last reported."""

    __tablename__ = "ops_device_telemetry"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reported_at: Mapped[datetime]
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    disk_percent: Mapped[float | None] = mapped_column(Float)
    transactions_total: Mapped[int] = mapped_column(BigInteger, default=0, doc="the agent's counter as last sent")
    failures_total: Mapped[int] = mapped_column(BigInteger, default=0)


class _Bucket:
    beats: Mapped[int] = mapped_column(Integer, default=0)
    cpu_max: Mapped[float | None] = mapped_column(Float)
    memory_max: Mapped[float | None] = mapped_column(Float)
    disk_max: Mapped[float | None] = mapped_column(Float)
    transactions: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    peripheral_faults: Mapped[int] = mapped_column(Integer, default=0, doc="heartbeats reporting a fault")


class TelemetryMinute(_Bucket, Base):
    """One device's heartbeats summed per minute; kept for a short while (see services.monitoring)."""

    __tablename__ = "ops_telemetry_minutes"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)


class TelemetryHour(_Bucket, Base):
    """The same per hour; kept long enough to know the usual level of each hour of the day."""

    __tablename__ = "ops_telemetry_hours"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)


class UpstreamHealth(Base):
    """The last probe of an upstream system (HIS, insurance, payment channel, e-invoice)."""

    __tablename__ = "ops_upstream_health"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    up: Mapped[bool] = mapped_column(Boolean, default=True)
    checked_at: Mapped[datetime]
    since: Mapped[datetime] = mapped_column(doc="when ``up`` last changed")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(200), default="")
    checks: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(BigInteger, default=0)


class AlertRecord(Base):
    """An alert instance: one rule for one label set, from pending to resolved.

    ``open_key`` is the fingerprint while the alert is pending or firing and NULL once resolved, so
    the unique constraint allows one open alert per fingerprint (de-duplication in the store).
    """

    __tablename__ = "ops_alerts"
    __table_args__ = (UniqueConstraint("open_key", name="uq_ops_alerts_open_key"),
                      Index("ix_ops_alerts_state", "state", "resolved_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(32), index=True)
    open_key: Mapped[str | None] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    labels: Mapped[dict] = mapped_column(default=dict)
    summary: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(10))
    active_since: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    last_true_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    notified_state: Mapped[str | None] = mapped_column(String(10), doc="firing/resolved as last notified")
    acknowledged_by: Mapped[str | None] = mapped_column(String(60))
    acknowledged_at: Mapped[datetime | None]
    assignee: Mapped[str | None] = mapped_column(String(60))
    notes: Mapped[list] = mapped_column(default=list, doc="[{at, by, action, text}]")


class AlertGroup(Base):
    """What was last notified for one group of alerts (Alertmanager's aggregation group)."""

    __tablename__ = "ops_alert_groups"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    first_seen_at: Mapped[datetime]
    last_notified_at: Mapped[datetime | None]
    sent: Mapped[list] = mapped_column(default=list, doc="fingerprints firing in the last notification")


class SilenceRecord(Base):
    """A silence (one-off, until ``ends_at``) or a maintenance window (weekly hours inside it)."""

    __tablename__ = "ops_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    matchers: Mapped[list] = mapped_column(default=list, doc='["building=门诊楼", "rule=~paper.*"]')
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    window: Mapped[dict | None] = mapped_column(doc="{weekdays: [0-6], start: HH:MM, end: HH:MM}")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
    expired_by: Mapped[str | None] = mapped_column(String(60))


class NotifyChannel(Base):
    """Where notifications go: a WeCom or DingTalk robot, a generic webhook, or e-mail."""

    __tablename__ = "ops_notify_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text, doc="URL; for e-mail an apprise mailto:// URL")
    secret: Mapped[str] = mapped_column(String(200), default="", doc="DingTalk signing secret")
    min_severity: Mapped[str] = mapped_column(String(10), default="warning")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]


class NotificationRecord(Base):
    """One delivery attempt of a group's notification to one channel."""

    __tablename__ = "ops_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(Integer, index=True)
    group_key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    firing: Mapped[int] = mapped_column(Integer, default=0)
    resolved: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(300), default="")
