"""The device ledger (台账): what each kiosk is, where it stands, what is plugged in, how it is set up.

Every change is appended to the audit trail in the same transaction, with the fields' values
before and after (``ledger.created``, ``ledger.changed``, ``ledger.commissioning``,
``ledger.enrolled``), so a device's history is the audit trail filtered by ``ledger:<id>``.

New devices go through commissioning (新设备调试): a checklist whose last step enrols the agent's
key through ``DeviceService.enroll`` — the same enrolment as ``medkiosk device enroll``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from medkiosk.services import audit
from medkiosk.services.audit import AuditRecord
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.devices import DEVICE_ID_RE, DeviceService
from medkiosk.settings import TerminalType
from medkiosk.store.models import AuditEntry, Device
from medkiosk.store.models_operations import LedgerRecord

TEXT_FIELDS = {"asset_no": 40, "name": 100, "model": 60, "vendor": 60, "serial": 60, "campus": 40, "building": 40,
               "floor": 20, "area": 60, "os": 60, "software_version": 40}
NETWORK_FIELDS = ("ip", "mac", "vlan", "switch_port")
PERIPHERAL_FIELDS = ("kind", "model", "serial", "firmware")
MAX_PERIPHERALS = 12
CONFIG_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    hint: str


COMMISSIONING_STEPS = (
    Step("ledger", "登记台账", "资产编号、型号、厂商、序列号、安装位置"),
    Step("network", "网络连通", "登记 IP、MAC、交换机端口；终端能访问服务地址"),
    Step("peripherals", "外设测试", "医保卡读卡器、身份证读卡器、扫码器读卡；凭条与 A4 打印机试打；登记外设型号、序列号、固件"),
    Step("software", "安装终端软件", "安装设备代理与浏览器，核对版本号"),
    Step("business", "业务联调", "HIS、医保、支付渠道测试交易各一笔"),
    Step("enroll", "登记设备密钥", "生成设备密钥，复制到终端，终端心跳上线后投入使用"),
)
STEP_KEYS = tuple(s.key for s in COMMISSIONING_STEPS)


class LedgerError(ValueError):
    """A ledger request refused; the message is Chinese and shown as is."""


class LedgerNotFound(LookupError):
    pass


def _clean_text(name: str, value: Any) -> str:
    text = str(value or "").strip()
    if len(text) > TEXT_FIELDS[name]:
        raise LedgerError(f"{name} 不能超过 {TEXT_FIELDS[name]} 个字符")
    return text


def normalise(changes: dict[str, Any]) -> dict[str, Any]:
    """Check and tidy the fields a form or the API sent; unknown fields are refused."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name in TEXT_FIELDS:
            out[name] = _clean_text(name, value)
        elif name == "terminal_type":
            try:
                out[name] = TerminalType(value).value
            except ValueError as exc:
                raise LedgerError("终端类型只能是门诊自助机或住院病区终端") from exc
        elif name == "network":
            out[name] = {k: str((value or {}).get(k, "")).strip()[:60] for k in NETWORK_FIELDS
                         if str((value or {}).get(k, "")).strip()}
        elif name == "peripherals":
            items = []
            for item in (value or [])[:MAX_PERIPHERALS]:
                cleaned = {k: str(item.get(k, "")).strip()[:60] for k in PERIPHERAL_FIELDS}
                if any(cleaned.values()):
                    items.append(cleaned)
            out[name] = items
        elif name == "config":
            config = {}
            for key, val in (value or {}).items():
                if not CONFIG_KEY_RE.match(str(key)):
                    raise LedgerError(f"配置项名称不正确：{key}")
                config[str(key)] = str(val)[:200]
            out[name] = config
        elif name == "status":
            if value not in ("commissioning", "in_service", "repair", "retired"):
                raise LedgerError("状态不正确")
            out[name] = value
        else:
            raise LedgerError(f"未知的台账字段：{name}")
    if out.get("asset_no") == "":
        out["asset_no"] = None
    return out


def _snapshot(row: LedgerRecord, names) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


class LedgerService:
    def __init__(self, uow_factory, clock: Clock, devices: DeviceService) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._devices = devices

    def records(self) -> list[LedgerRecord]:
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(LedgerRecord).order_by(LedgerRecord.campus, LedgerRecord.building,
                                                                          LedgerRecord.floor, LedgerRecord.device_id)))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def unrecorded_devices(self) -> list[Device]:
        """Devices enrolled (e.g. with the CLI) that have no ledger record yet."""
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(Device).where(
                Device.id.not_in(select(LedgerRecord.device_id))).order_by(Device.id)))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def get(self, device_id: str) -> LedgerRecord:
        with self._uow() as uow:
            row = uow.session.get(LedgerRecord, device_id)
            if row is None:
                raise LedgerNotFound(device_id)
            uow.session.expunge(row)
            return row

    def create(self, actor: str, device_id: str, fields: dict[str, Any], *, client: str = "") -> LedgerRecord:
        if not DEVICE_ID_RE.match(device_id or ""):
            raise LedgerError("设备编号为 2–32 位字母、数字、“-”或“_”")
        values = normalise(fields)
        now = self._clock.now()
        with self._uow() as uow:
            if uow.session.get(LedgerRecord, device_id) is not None:
                raise LedgerError(f"设备 {device_id} 已在台账中")
            self._check_asset_unique(uow, device_id, values.get("asset_no"))
            enrolled = uow.session.get(Device, device_id)
            row = LedgerRecord(device_id=device_id, created_at=now, updated_at=now, network={}, peripherals=[],
                               config={}, terminal_type=(enrolled.terminal_type if enrolled else "outpatient"),
                               status="in_service" if enrolled else "commissioning",
                               commissioning={"ledger": {"by": actor, "at": now.isoformat(), "note": ""}},
                               **{name: "" for name in TEXT_FIELDS if name != "asset_no"})
            for name, value in values.items():
                setattr(row, name, value)
            uow.session.add(row)
            uow.session.flush()
            audit.append(uow, self._clock, actor, "ledger.created", f"ledger:{device_id}",
                         {"after": _snapshot(row, [*TEXT_FIELDS, "terminal_type", "network", "peripherals", "config",
                                                   "status"]), "client": client})
            uow.commit()
            uow.session.expunge(row)
            return row

    def _check_asset_unique(self, uow, device_id: str, asset_no: str | None) -> None:
        if asset_no:
            other = uow.session.scalars(select(LedgerRecord.device_id).where(
                LedgerRecord.asset_no == asset_no, LedgerRecord.device_id != device_id)).first()
            if other:
                raise LedgerError(f"资产编号 {asset_no} 已登记给设备 {other}")

    def update(self, actor: str, device_id: str, fields: dict[str, Any], *, client: str = "") -> dict[str, Any]:
        """Change some fields; returns ``{"before": …, "after": …}`` of the fields that changed
        (nothing is written or audited when nothing changed)."""
        values = normalise(fields)
        with self._uow() as uow:
            row = uow.session.get(LedgerRecord, device_id)
            if row is None:
                raise LedgerNotFound(device_id)
            self._check_asset_unique(uow, device_id, values.get("asset_no"))
            changed = [name for name, value in values.items() if getattr(row, name) != value]
            if not changed:
                return {"before": {}, "after": {}}
            before = _snapshot(row, changed)
            for name in changed:
                setattr(row, name, values[name])
            row.updated_at = self._clock.now()
            diff = {"before": before, "after": _snapshot(row, changed)}
            if any(name in changed for name in ("name", "campus", "building", "floor", "area")):
                device = uow.session.get(Device, device_id)
                if device is not None:  # keep the enrolment's name and location in step
                    device.name = row.name or device.name
                    device.location = " / ".join(p for p in (row.campus, row.building, row.floor, row.area) if p)
            audit.append(uow, self._clock, actor, "ledger.changed", f"ledger:{device_id}", {**diff, "client": client})
            uow.commit()
            return diff

    def history(self, device_id: str, limit: int = 100) -> list[AuditRecord]:
        with self._uow() as uow:
            rows = uow.session.scalars(select(AuditEntry).where(AuditEntry.target == f"ledger:{device_id}")
                                       .order_by(AuditEntry.id.desc()).limit(limit))
            return [AuditRecord(e.id, as_utc(e.at), e.actor, e.action, e.target, dict(e.details or {}), e.prev_hash,
                                e.hash) for e in rows]

    # -- commissioning -------------------------------------------------------------------------------
    def complete_step(self, actor: str, device_id: str, step: str, note: str = "", *, client: str = "") -> LedgerRecord:
        if step not in STEP_KEYS or step == "enroll":
            raise LedgerError("未知的调试步骤" if step not in STEP_KEYS else "登记设备密钥请使用“生成设备密钥”按钮")
        now = self._clock.now()
        with self._uow() as uow:
            row = uow.session.get(LedgerRecord, device_id)
            if row is None:
                raise LedgerNotFound(device_id)
            row.commissioning = {**(row.commissioning or {}),
                                 step: {"by": actor, "at": now.isoformat(), "note": note.strip()[:300]}}
            row.updated_at = now
            audit.append(uow, self._clock, actor, "ledger.commissioning", f"ledger:{device_id}",
                         {"step": step, "note": note.strip()[:300], "client": client})
            uow.commit()
            uow.session.expunge(row)
            return row

    def enroll(self, actor: str, device_id: str, *, replace_key: bool = False, client: str = "") -> bytes:
        """The last commissioning step: enrol the agent's key; returns the private key PEM (shown once)."""
        row = self.get(device_id)
        missing = [s.title for s in COMMISSIONING_STEPS[:-1] if s.key not in (row.commissioning or {})]
        if missing and not replace_key:
            raise LedgerError("请先完成调试步骤：" + "、".join(missing))
        location = " / ".join(p for p in (row.campus, row.building, row.floor, row.area) if p)
        with self._uow() as uow:
            already = uow.session.get(Device, device_id) is not None
        pem = self._devices.enroll(device_id, TerminalType(row.terminal_type), name=row.name or device_id,
                                   location=location, replace_key=replace_key or already)
        now = self._clock.now()
        with self._uow() as uow:
            row = uow.session.get(LedgerRecord, device_id)
            row.commissioning = {**(row.commissioning or {}), "enroll": {"by": actor, "at": now.isoformat(),
                                                                         "note": "re-key" if already else ""}}
            before = row.status
            row.status, row.updated_at = "in_service", now
            audit.append(uow, self._clock, actor, "ledger.enrolled", f"ledger:{device_id}",
                         {"before": {"status": before}, "after": {"status": "in_service"}, "rekeyed": already,
                          "client": client})
            uow.commit()
        return pem
