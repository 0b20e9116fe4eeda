"""Department configuration (科室配置): edit a draft, preview it on test kiosks, publish; every change audited.

Which version is published and which is the draft lives in one row (``department_config_head``)
that every change locks and whose ``revision`` it bumps. A kiosk's read costs one primary-key
read of that row: a worker whose cached configuration carries an older revision reloads it, so a
publish made through any worker is seen by every other on their next request, with no restart.
The HIS's own list is cached for ``his_ttl`` seconds (it changes when the HIS changes, rarely);
when the HIS does not answer, the last list read is used.

Preview kiosks are the ledger's ``devices.preview`` flag (a designated test kiosk, the same flag
that picks a building's pilot kiosk for a release); this page sets it, audited on ``ledger:<id>``.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from medkiosk.adapters.his.port import HisPort
from medkiosk.domain import departments as domain
from medkiosk.domain.departments import DepartmentEntry, HisDepartment, KioskGroup
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock
from medkiosk.store.models import Device
from medkiosk.store.models_departments import (
    DepartmentConfigEntry,
    DepartmentConfigHead,
    DepartmentConfigVersion,
)
from medkiosk.store.uow import UnitOfWork

log = get_logger(__name__)

HEAD_ID = 1
EDITABLE = ("name", "group", "position", "hidden", "his_codes", "doctor_codes", "intro", "location")


class VersionState(StrEnum):
    DRAFT = "draft"
    """Being edited; seen only by preview kiosks."""
    PUBLISHED = "published"
    """What every kiosk shows."""
    SUPERSEDED = "superseded"
    """Was published; a later version replaced it."""
    DISCARDED = "discarded"
    """A draft thrown away unpublished."""


class DepartmentsRefused(Exception):
    """A change refused; ``problems`` are Chinese sentences for staff, ``message`` joins them."""

    status = 422

    def __init__(self, problems: list[str] | str, next_step: str = "请修改后重新提交") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.message = "；".join(self.problems)
        self.next_step = next_step
        super().__init__(self.message)


class HisUnavailable(Exception):
    """The HIS did not list its departments and none were read before."""

    status = 503
    message = "暂时无法获取科室列表"
    next_step = "请稍后再试，或到人工窗口挂号"


@dataclass(frozen=True)
class Configuration:
    """A version as read: its entries, and who made it when."""

    version: int | None
    state: VersionState | None
    entries: tuple[DepartmentEntry, ...]
    created_by: str = ""
    created_at: Any = None
    published_by: str | None = None
    published_at: Any = None


NOTHING = Configuration(None, None, ())


def _entry(row: DepartmentConfigEntry) -> DepartmentEntry:
    return DepartmentEntry(key=row.key, name=row.name, his_codes=tuple(row.his_codes or ()), position=row.position,
                           hidden=row.hidden, group=row.group_name,
                           doctor_codes=None if row.doctor_codes is None else tuple(row.doctor_codes),
                           intro=row.intro, location=row.location)


def _row(version_id: int, entry: DepartmentEntry) -> DepartmentConfigEntry:
    return DepartmentConfigEntry(version_id=version_id, key=entry.key, name=entry.name, group_name=entry.group,
                                 position=entry.position, hidden=entry.hidden, his_codes=list(entry.his_codes),
                                 doctor_codes=None if entry.doctor_codes is None else list(entry.doctor_codes),
                                 intro=entry.intro, location=entry.location)


def tree_json(groups: list[KioskGroup]) -> list[dict[str, Any]]:
    """The tree as a kiosk receives it: names, intro, location and the HIS codes to ask for doctors."""
    return [{"name": g.name, "departments": [
        {"name": d.name, "intro": d.intro, "location": d.location, "his_codes": list(d.his_codes),
         "doctor_codes": None if d.doctor_codes is None else list(d.doctor_codes)} for d in g.departments]}
        for g in groups]


class DepartmentService:
    def __init__(self, uow_factory, clock: Clock, his: HisPort, *, his_ttl: float = 30.0) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._his = his
        self._his_ttl = his_ttl
        self._lock = threading.Lock()
        self._his_cache: tuple[float, list[HisDepartment]] | None = None
        self._configs: dict[tuple[int, bool], Configuration] = {}

    # -- reading ---------------------------------------------------------------------------------------
    def his_departments(self, *, fresh: bool = False) -> list[HisDepartment]:
        """The HIS's clinical departments in its order, each with its group (cached ``his_ttl`` seconds)."""
        cached = self._his_cache
        if cached and not fresh and time.monotonic() - cached[0] < self._his_ttl:
            return cached[1]
        try:
            groups = self._his.list_departments()
        except Exception as exc:  # any HIS failure: the last list read, else a clear refusal
            log.warning("departments.his_unavailable", error=type(exc).__name__)
            if cached:
                return cached[1]
            raise HisUnavailable() from exc
        listed = [HisDepartment(code=d.code, name=d.name, group_code=g.code, group_name=g.name, location=d.location,
                                intro=d.intro)
                  for g in groups for d in (g.children or [g])]
        self._his_cache = (time.monotonic(), listed)
        return listed

    def his_doctors(self, his_code: str) -> list[dict[str, str]]:
        """A HIS department's doctors (code, name, title), for choosing a split's doctors."""
        return [{"code": d.code, "name": d.name, "title": d.title} for d in self._his.list_doctors(his_code)]

    def _head(self, uow: UnitOfWork, *, lock: bool = False) -> DepartmentConfigHead:
        head = uow.session.get(DepartmentConfigHead, HEAD_ID, with_for_update=lock)
        if head is None:  # a database set up without the migration's row (create_all): make it
            head = DepartmentConfigHead(id=HEAD_ID, revision=0)
            uow.session.add(head)
            uow.session.flush()
        return head

    def _read(self, uow: UnitOfWork, version_id: int | None) -> Configuration:
        if version_id is None:
            return NOTHING
        version = uow.session.get(DepartmentConfigVersion, version_id)
        rows = uow.session.scalars(select(DepartmentConfigEntry).where(DepartmentConfigEntry.version_id == version_id)
                                   .order_by(DepartmentConfigEntry.position, DepartmentConfigEntry.key))
        return Configuration(version.id, VersionState(version.state), tuple(_entry(r) for r in rows),
                             version.created_by, version.created_at, version.published_by, version.published_at)

    def configuration(self, *, draft: bool = False) -> Configuration:
        """The published configuration, or (``draft``) the draft when there is one, else the published one.
        Cached by the head's revision: one primary-key read when nothing changed."""
        with self._uow() as uow:
            head = uow.session.get(DepartmentConfigHead, HEAD_ID)
            if head is None:
                return NOTHING
            wanted = (head.draft_version or head.published_version) if draft else head.published_version
            key = (head.revision, draft)
            cached = self._configs.get(key)
            if cached is not None:
                return cached
            config = self._read(uow, wanted)
        with self._lock:
            self._configs = {k: v for k, v in self._configs.items() if k[0] >= key[0]}
            self._configs[key] = config
        return config

    def kiosk_tree(self, *, preview: bool) -> list[KioskGroup]:
        """What a kiosk shows: the draft on a preview kiosk (when there is one), the published one elsewhere."""
        return domain.apply(self.his_departments(), self.configuration(draft=preview).entries)

    def for_kiosk(self, *, preview: bool) -> dict[str, Any]:
        config = self.configuration(draft=preview)
        groups = domain.apply(self.his_departments(), config.entries)
        return {"preview": preview and config.state is VersionState.DRAFT, "groups": tree_json(groups)}

    def overview(self) -> dict[str, Any]:
        """Everything the staff page shows: both versions, both trees, the draft's problems, preview kiosks."""
        his = self.his_departments(fresh=True)
        with self._uow() as uow:
            head = self._head(uow)
            published = self._read(uow, head.published_version)
            draft = self._read(uow, head.draft_version)
        current = draft if draft.version is not None else published
        return {"his": his, "published": published, "draft": draft,
                "published_tree": domain.apply(his, published.entries),
                "draft_tree": domain.apply(his, current.entries),
                "problems": domain.validate(his, current.entries) if draft.version is not None else [],
                "preview_kiosks": self.preview_kiosks(), "history": self.versions()}

    def versions(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._uow() as uow:
            rows = uow.session.scalars(select(DepartmentConfigVersion).order_by(DepartmentConfigVersion.id.desc())
                                       .limit(limit))
            return [{"version": r.id, "state": r.state, "created_by": r.created_by, "created_at": r.created_at,
                     "published_by": r.published_by, "published_at": r.published_at} for r in rows]

    # -- editing the draft -------------------------------------------------------------------------------
    def _change(self, actor: str, action: str, change) -> dict[str, Any]:
        """Run ``change(draft_entries) -> (new_entries, details)`` on the draft (made from the published
        version when there is none) under the head's lock; refused when the result is not valid."""
        his = self.his_departments()
        with self._uow() as uow:
            head = self._head(uow, lock=True)
            if head.draft_version is None:
                published = self._read(uow, head.published_version)
                version = DepartmentConfigVersion(state=VersionState.DRAFT.value, based_on=head.published_version,
                                                  created_at=self._clock.now(), created_by=actor)
                uow.session.add(version)
                uow.session.flush()
                for entry in published.entries:
                    uow.session.add(_row(version.id, entry))
                head.draft_version = version.id
                uow.session.flush()
            before = self._read(uow, head.draft_version).entries
            after, details = change(list(before))
            problems = domain.validate(his, after, details.pop("doctors", None))
            if problems:
                raise DepartmentsRefused(problems)
            old = {e.key: e for e in before}
            new = {e.key: e for e in after}
            changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
            if not changed:
                return {"version": head.draft_version, "changed": []}
            for row in uow.session.scalars(select(DepartmentConfigEntry).where(
                    DepartmentConfigEntry.version_id == head.draft_version, DepartmentConfigEntry.key.in_(changed))):
                uow.session.delete(row)
            uow.session.flush()
            for key in sorted(changed & new.keys()):
                uow.session.add(_row(head.draft_version, new[key]))
            head.revision += 1
            head.updated_at = self._clock.now()
            audit.append(uow, self._clock, actor, action, f"department_config:{head.draft_version}", {
                **details, "version": head.draft_version,
                "before": [old[k].to_json() for k in sorted(changed & old.keys())],
                "after": [new[k].to_json() for k in sorted(changed & new.keys())]})
            uow.commit()
            log.info("departments.draft_changed", action=action, actor=actor, keys=sorted(changed))
            return {"version": head.draft_version, "changed": sorted(changed)}

    def save_department(self, actor: str, fields: dict[str, Any], *, key: str = "") -> dict[str, Any]:
        """Rename, reorder, hide, regroup, map, give an intro or a location: change the named ``fields`` of
        the draft's department ``key``; without ``key``, start configuring the HIS department
        ``fields["his_codes"][0]`` (seeded as the kiosk shows it now)."""
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        his = self.his_departments()

        def change(entries: list[DepartmentEntry]):
            if key:
                current = next((e for e in entries if e.key == key), None)
                if current is None:
                    raise DepartmentsRefused("该科室已不在草稿中（可能已被他人修改）", "请刷新页面后重试")
            else:
                codes = tuple(fields.get("his_codes") or ())
                if not codes or codes[0] not in {d.code for d in his}:
                    raise DepartmentsRefused(f"HIS 中没有科室 {codes[0] if codes else '（未填写）'}")
                if any(codes[0] in e.his_codes for e in entries):
                    raise DepartmentsRefused(f"HIS 科室 {codes[0]} 已经配置，请在其所在科室上修改", "请刷新页面后重试")
                current = domain.seed_entry(his, codes[0], _new_key())
            data = {**current.to_json(), **fields}
            updated = DepartmentEntry.from_json(data)
            return [e for e in entries if e.key != current.key] + [updated], {"key": updated.key}

        return self._change(actor, "departments.draft_changed", change)

    def merge(self, actor: str, name: str, his_codes: list[str], *, intro: str = "", location: str = "",
              group: str = "") -> dict[str, Any]:
        """One kiosk department for several HIS departments: they leave whatever department showed them."""
        his = self.his_departments()
        codes = tuple(dict.fromkeys(c for c in his_codes if c))
        if len(codes) < 2:
            raise DepartmentsRefused("合并须至少选择两个 HIS 科室")
        index = {d.code: i for i, d in enumerate(his)}

        def change(entries: list[DepartmentEntry]):
            positions = [e.position for e in entries if set(e.his_codes) & set(codes)]
            positions += [domain.default_position(index[c]) for c in codes if c in index
                          and not any(c in e.his_codes for e in entries)]
            merged = DepartmentEntry(key=_new_key(), name=name.strip(), his_codes=codes,
                                     position=min(positions, default=0), group=group.strip(), intro=intro.strip(),
                                     location=location.strip())
            return domain.without_codes(entries, codes) + [merged], {"operation": "merge", "key": merged.key}

        return self._change(actor, "departments.draft_merged", change)

    def split(self, actor: str, his_code: str, parts: list[tuple[str, list[str]]]) -> dict[str, Any]:
        """One HIS department shown as several kiosk departments, each ``(name, doctor codes)``; it leaves
        whatever department showed it. Doctors in no part are not offered at the kiosk."""
        his = self.his_departments()
        if his_code not in {d.code for d in his}:
            raise DepartmentsRefused(f"HIS 中没有科室 {his_code}")
        parts = [(n.strip(), list(dict.fromkeys(d for d in ds if d))) for n, ds in parts if n.strip() or ds]
        if len(parts) < 2:
            raise DepartmentsRefused("拆分须至少填写两个科室，并为每个科室选择医生")
        doctors = {his_code: [d["code"] for d in self.his_doctors(his_code)]}
        seed = domain.seed_entry(his, his_code, "")

        def change(entries: list[DepartmentEntry]):
            existing = next((e for e in entries if his_code in e.his_codes), None)
            base = existing.position if existing else seed.position
            made = [DepartmentEntry(key=_new_key(), name=n, his_codes=(his_code,), position=base + i,
                                    group=existing.group if existing else seed.group,
                                    doctor_codes=tuple(ds),
                                    location=existing.location if existing else "")
                    for i, (n, ds) in enumerate(parts)]
            return (domain.without_codes(entries, {his_code}) + made,
                    {"operation": "split", "his_code": his_code, "doctors": doctors})

        return self._change(actor, "departments.draft_split", change)

    def restore(self, actor: str, key: str) -> dict[str, Any]:
        """Drop a department from the draft: its HIS departments show again as the HIS names them."""
        def change(entries: list[DepartmentEntry]):
            if not any(e.key == key for e in entries):
                raise DepartmentsRefused("该科室已不在草稿中（可能已被他人修改）", "请刷新页面后重试")
            return [e for e in entries if e.key != key], {"operation": "restore", "key": key}

        return self._change(actor, "departments.draft_changed", change)

    # -- publishing ---------------------------------------------------------------------------------------
    def publish(self, actor: str) -> dict[str, Any]:
        """The draft becomes what every kiosk shows; the version it replaces is kept, superseded."""
        his = self.his_departments(fresh=True)
        with self._uow() as uow:
            head = self._head(uow, lock=True)
            if head.draft_version is None:
                raise DepartmentsRefused("没有待发布的草稿", "请先修改科室")
            draft = self._read(uow, head.draft_version)
            problems = domain.validate(his, draft.entries)
            if problems:
                raise DepartmentsRefused(problems)
            before = self._read(uow, head.published_version)
            now = self._clock.now()
            if before.version is not None:
                old = uow.session.get(DepartmentConfigVersion, before.version)
                old.state, old.closed_at = VersionState.SUPERSEDED.value, now
            version = uow.session.get(DepartmentConfigVersion, draft.version)
            version.state, version.published_at, version.published_by = VersionState.PUBLISHED.value, now, actor
            head.published_version, head.draft_version = draft.version, None
            head.revision += 1
            head.updated_at = now
            audit.append(uow, self._clock, actor, "departments.published", f"department_config:{draft.version}", {
                "version": draft.version, "replaces": before.version,
                "before": [e.to_json() for e in before.entries], "after": [e.to_json() for e in draft.entries]})
            uow.commit()
        log.info("departments.published", version=draft.version, actor=actor)
        return {"version": draft.version, "replaces": before.version}

    def discard(self, actor: str) -> dict[str, Any]:
        """Throw the draft away; preview kiosks show the published configuration again."""
        with self._uow() as uow:
            head = self._head(uow, lock=True)
            if head.draft_version is None:
                raise DepartmentsRefused("没有草稿可放弃")
            draft = self._read(uow, head.draft_version)
            published = self._read(uow, head.published_version)
            version = uow.session.get(DepartmentConfigVersion, draft.version)
            version.state, version.closed_at = VersionState.DISCARDED.value, self._clock.now()
            head.draft_version = None
            head.revision += 1
            head.updated_at = self._clock.now()
            audit.append(uow, self._clock, actor, "departments.draft_discarded", f"department_config:{draft.version}", {
                "version": draft.version, "before": [e.to_json() for e in draft.entries],
                "after": [e.to_json() for e in published.entries]})
            uow.commit()
        return {"version": draft.version}

    # -- preview kiosks ---------------------------------------------------------------------------------------
    def preview_kiosks(self) -> list[dict[str, Any]]:
        with self._uow() as uow:
            rows = uow.session.scalars(select(Device).where(Device.preview.is_(True)).order_by(Device.id))
            return [{"device_id": d.id, "name": d.name, "location": d.location, "enabled": d.enabled} for d in rows]

    def set_preview(self, actor: str, device_id: str, preview: bool) -> bool:
        """Make a kiosk a preview (test) kiosk or an ordinary one; False when it already was."""
        with self._uow() as uow:
            device = uow.session.get(Device, device_id, with_for_update=True)
            if device is None:
                raise DepartmentsRefused(f"没有编号为 {device_id} 的已登记设备", "请核对设备编号（见设备台账）")
            if bool(device.preview) == preview:
                return False
            device.preview = preview
            audit.append(uow, self._clock, actor, "departments.preview_kiosk", f"ledger:{device_id}",
                         {"before": {"preview": not preview}, "after": {"preview": preview}})
            uow.commit()
        return True


def _new_key() -> str:
    return "d" + secrets.token_hex(5)


__all__ = ["Configuration", "DepartmentService", "DepartmentsRefused", "HisUnavailable", "VersionState", "tree_json"]
