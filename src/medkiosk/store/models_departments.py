"""Tables for the kiosk's department configuration (科室配置): versions (draft, published, …) and their departments.

Preview kiosks are the ledger's own ``devices.preview`` flag (a designated test kiosk), not a table here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from medkiosk.store.models import Base


class DepartmentConfigHead(Base):
    """The one row that says which version is published and which is the draft. Every change locks it
    (SELECT … FOR UPDATE) and bumps ``revision``, which every worker reads to know its cache is stale."""

    __tablename__ = "department_config_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    published_version: Mapped[int | None] = mapped_column(Integer)
    draft_version: Mapped[int | None] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None]


class DepartmentConfigVersion(Base):
    """A whole configuration: a draft until published or discarded; a published one is superseded by the next."""

    __tablename__ = "department_config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(12), doc="services.departments.VersionState")
    based_on: Mapped[int | None] = mapped_column(Integer, doc="the published version the draft started from")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(60))
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(60))
    closed_at: Mapped[datetime | None] = mapped_column(doc="superseded or discarded")


class DepartmentConfigEntry(Base):
    """One kiosk department of a version (domain.departments.DepartmentEntry)."""

    __tablename__ = "department_config_entries"
    __table_args__ = (UniqueConstraint("version_id", "key", name="uq_department_config_entry_key"),
                      Index("ix_department_config_entries_version", "version_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("department_config_versions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(16), doc="stable across versions")
    name: Mapped[str] = mapped_column(String(40))
    group_name: Mapped[str] = mapped_column(String(40), default="")
    position: Mapped[int] = mapped_column(Integer)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    his_codes: Mapped[list] = mapped_column(default=list)
    doctor_codes: Mapped[list | None] = mapped_column(doc="None: every doctor of its HIS codes")
    intro: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(100), default="")
