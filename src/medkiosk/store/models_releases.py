"""Tables for operations platform: signed releases, rollouts and shipped logs.

States are stored as the string values of the enums in ``medkiosk.domain.releases``; the domain
checks every transition before the service writes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base


class Release(Base):
    """A published release: version, change list, test record, and the signature over its artifact."""

    __tablename__ = "releases"

    version: Mapped[str] = mapped_column(String(40), primary_key=True)
    changes: Mapped[list] = mapped_column(default=list, doc="one line per function added, changed or removed")
    test_record: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(String(200), doc="base64 Ed25519 over the release statement")
    key_id: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[datetime]
    published_by: Mapped[str] = mapped_column(String(80))


class ReleaseArtifact(Base):
    """The artifact's bytes, apart from ``releases`` so that listing releases never loads them."""

    __tablename__ = "release_artifacts"

    version: Mapped[str] = mapped_column(ForeignKey("releases.version"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Rollout(Base):
    """One release rolled out in phases, with the release it falls back to (pinned when it starts)."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_state", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(ForeignKey("releases.version"))
    previous_version: Mapped[str] = mapped_column(String(40), doc="what a rollback returns to ('builtin' = the agent's own page)")
    state: Mapped[str] = mapped_column(String(20))
    thresholds: Mapped[dict] = mapped_column(default=dict, doc="the gate thresholds, as judged")
    reason: Mapped[str] = mapped_column(Text, default="", doc="why it was rolled back")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    finished_at: Mapped[datetime | None]


class RolloutPhase(Base):
    """A group of kiosks that gets the release together and is judged by one gate."""

    __tablename__ = "rollout_phases"
    __table_args__ = (UniqueConstraint("rollout_id", "position", name="uq_rollout_phase_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), doc="pilot, share or rest")
    device_ids: Mapped[list] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(20))
    baseline: Mapped[dict] = mapped_column(default=dict, doc="peripherals already faulty when the phase started")
    verdict: Mapped[dict] = mapped_column(default=dict, doc="the last gate verdict: outcome and reasons")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class DeviceTarget(Base):
    """The version a device should run; the agent reads it with a signed GET."""

    __tablename__ = "device_release_targets"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    version: Mapped[str] = mapped_column(String(40))
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id"))
    health_deadline_seconds: Mapped[int] = mapped_column(Integer, default=120)
    assigned_at: Mapped[datetime]


class DeviceReleaseReport(Base):
    """What an agent said about a release: refused, switched, healthy, rolled back …"""

    __tablename__ = "device_release_reports"
    __table_args__ = (Index("ix_device_release_reports_device", "device_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class DeviceLogBatch(Base):
    """A batch of log lines an agent shipped; its id makes a retried batch count once."""

    __tablename__ = "device_log_batches"
    __table_args__ = (UniqueConstraint("device_id", "batch_id", name="uq_device_log_batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(index=True)


class DeviceLogLine(Base):
    """One structured log line from an agent, masked by the agent and scrubbed again on arrival."""

    __tablename__ = "device_log_lines"
    __table_args__ = (Index("ix_device_log_lines_device_at", "device_id", "at"),
                      Index("ix_device_log_lines_at", "at"),
                      Index("ix_device_log_lines_session", "session_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(10))
    event: Mapped[str] = mapped_column(String(120))
    session_id: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, doc="the whole line as JSON: what a text search reads")
    fields: Mapped[dict] = mapped_column(default=dict)
    received_at: Mapped[datetime]


class MajorEvent(Base):
    """A major-event period (重大保障): tighter thresholds from ``starts_at`` to ``ends_at``."""

    __tablename__ = "major_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    thresholds: Mapped[dict] = mapped_column(default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
