"""Operations pages (/staff/ops/…) and their JSON twin (/api/ops/…): dashboard, ledger, alerts, silences.

Same rules as the other staff pages (api/staff.py): sessions, roles, CSRF on every change, no
scripts — the dashboard refreshes itself and its charts are SVG drawn here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from medkiosk.api.staff import HOSPITAL_TIME, _client, _container, _PageRoute, require, templates
from medkiosk.domain.alerts import Severity
from medkiosk.services.alerts import AlertNotFound
from medkiosk.services.clock import as_utc
from medkiosk.services.ledger import (COMMISSIONING_STEPS, NETWORK_FIELDS, PERIPHERAL_FIELDS, TEXT_FIELDS,
                                      LedgerError, LedgerNotFound)
from medkiosk.services.notify import RULE_TITLES, ChannelKind
from medkiosk.services.operations import Operations, operations_of
from medkiosk.services.staff import Permission, StaffPrincipal
from medkiosk.web import svg

DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$")]
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Viewer = Annotated[StaffPrincipal, Depends(require(Permission.VIEW_DEVICES))]
Manager = Annotated[StaffPrincipal, Depends(require(Permission.MANAGE_DEVICES))]
Handler = Annotated[StaffPrincipal, Depends(require(Permission.HANDLE_EVENTS))]

templates.env.globals.update(svg=svg, RULE_TITLES=RULE_TITLES)


def _ops(request: Request) -> Operations:
    return operations_of(_container(request))


Ops = Annotated[Operations, Depends(_ops)]


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, f"staff/{name}", context, status_code=status_code)


def _hour_labels(now: datetime, hours: int) -> list[datetime]:
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    return [start + timedelta(hours=i) for i in range(hours)]


def dashboard_data(ops: Operations, now: datetime, hours: int = 12) -> dict[str, Any]:
    fleet = ops.monitoring.fleet()
    hourly = ops.monitoring.hourly(hours)
    slots = _hour_labels(now, hours)
    floors: dict[tuple[str, str, str], list] = defaultdict(list)
    for device in fleet:
        floors[device.location].append(device)
    per_device = {}
    totals = [(slot.astimezone(HOSPITAL_TIME).strftime("%H时"), 0, 0) for slot in slots]
    for device in fleet:
        counts = hourly.get(device.id, {})
        tx = [counts.get(slot, (0, 0))[0] for slot in slots]
        fail = [counts.get(slot, (0, 0))[1] for slot in slots]
        per_device[device.id] = (tx, fail)
        totals = [(label, ok + t - f, bad + f) for (label, ok, bad), t, f in zip(totals, tx, fail)]
    alerts = ops.alerts.alerts()
    tx_today = sum(d.transactions_today for d in fleet)
    fail_today = sum(d.failures_today for d in fleet)
    return {
        "fleet": fleet, "floors": sorted(floors.items()), "per_device": per_device,
        "chart": svg.stacked_bars(totals, title="全院每小时交易量（绿色成功，红色失败）"),
        "upstreams": ops.monitoring.upstreams(), "alerts": alerts,
        "firing": [a for a in alerts if a.state == "firing"],
        "online": sum(1 for d in fleet if d.online and d.enabled),
        "offline": [d for d in fleet if d.enabled and not d.online],
        "faulty": [d for d in fleet if d.enabled and d.online and d.faults],
        "tx_today": tx_today, "fail_today": fail_today,
        "success_today": (1 - fail_today / tx_today) if tx_today else None,
    }


# --- pages ---------------------------------------------------------------------------------------------
pages = APIRouter(prefix="/staff/ops", route_class=_PageRoute, include_in_schema=False)


@pages.get("/")
def dashboard(request: Request, staff: Viewer, ops: Ops) -> Response:
    now = ops.monitoring.now()
    return _render(request, "ops_dashboard.html", {"staff": staff, "now": now, **dashboard_data(ops, now)})


def _ledger_form(form: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {name: form.get(name, "") for name in TEXT_FIELDS if name in form}
    if "terminal_type" in form:
        fields["terminal_type"] = form["terminal_type"]
    if any(f"network_{k}" in form for k in NETWORK_FIELDS):
        fields["network"] = {k: form.get(f"network_{k}", "") for k in NETWORK_FIELDS}
    if any(k.startswith("p0_") for k in form):
        fields["peripherals"] = [{k: form.get(f"p{i}_{k}", "") for k in PERIPHERAL_FIELDS} for i in range(8)]
    if "config" in form:
        config = {}
        for line in str(form["config"]).splitlines():
            if line.strip():
                key, sep, value = line.partition("=")
                if not sep:
                    raise LedgerError(f"配置请写成“名称=值”，每行一项：{line.strip()[:40]}")
                config[key.strip()] = value.strip()
        fields["config"] = config
    if form.get("status"):
        fields["status"] = form["status"]
    return fields


@pages.get("/ledger")
def ledger(request: Request, staff: Viewer, ops: Ops, error: str = "") -> Response:
    return _render(request, "ops_ledger.html", {"staff": staff, "records": ops.ledger.records(),
                                                "unrecorded": ops.ledger.unrecorded_devices(), "error": error,
                                                "steps": COMMISSIONING_STEPS})


@pages.post("/ledger")
async def ledger_create(request: Request, staff: Manager, ops: Ops) -> Response:
    form = dict(await request.form())
    device_id = str(form.pop("device_id", "")).strip()
    try:
        await run_in_threadpool(ops.ledger.create, staff.username, device_id, _ledger_form(form),
                                client=_client(request))
    except LedgerError as exc:
        return _render(request, "ops_ledger.html", {
            "staff": staff, "records": ops.ledger.records(), "unrecorded": ops.ledger.unrecorded_devices(),
            "error": str(exc), "steps": COMMISSIONING_STEPS}, status_code=400)
    return RedirectResponse(f"/staff/ops/ledger/{device_id}", status_code=303)


def _device_page(request: Request, staff: StaffPrincipal, ops: Operations, device_id: str, *, error: str = "",
                 notice: str = "", pem: str = "", status_code: int = 200) -> Response:
    try:
        record = ops.ledger.get(device_id)
    except LedgerNotFound as exc:
        raise HTTPException(404, {"message": f"台账中没有设备 {device_id}"}) from exc
    now = ops.monitoring.now()
    view = next((d for d in ops.monitoring.fleet() if d.id == device_id), None)
    counts = ops.monitoring.hourly(24, device_id).get(device_id, {})
    slots = _hour_labels(now, 24)
    chart = svg.stacked_bars([(s.astimezone(HOSPITAL_TIME).strftime("%H时"), counts.get(s, (0, 0))[0]
                               - counts.get(s, (0, 0))[1], counts.get(s, (0, 0))[1]) for s in slots],
                             title=f"{device_id} 近 24 小时每小时交易量")
    alerts = [a for a in ops.alerts.alerts(open_only=False, limit=500) if a.labels.get("device") == device_id][:20]
    return _render(request, "ops_device.html", {
        "staff": staff, "record": record, "view": view, "history": ops.ledger.history(device_id), "chart": chart,
        "steps": COMMISSIONING_STEPS, "alerts": alerts, "error": error, "notice": notice, "pem": pem,
        "minutes": ops.monitoring.minutes(device_id, 60), "device_tickets": ops.tickets.for_device(device_id)},
        status_code=status_code)


@pages.get("/ledger/{device_id}")
def device_page(request: Request, device_id: DeviceId, staff: Viewer, ops: Ops,
                saved: bool = False) -> Response:
    return _device_page(request, staff, ops, device_id, notice="台账已保存" if saved else "")


@pages.post("/ledger/{device_id}")
async def device_update(request: Request, device_id: DeviceId, staff: Manager, ops: Ops) -> Response:
    form = dict(await request.form())
    form.pop("csrf_token", None)
    try:
        await run_in_threadpool(ops.ledger.update, staff.username, device_id, _ledger_form(form),
                                client=_client(request))
    except LedgerError as exc:
        return _device_page(request, staff, ops, device_id, error=str(exc), status_code=400)
    except LedgerNotFound as exc:
        raise HTTPException(404, {"message": f"台账中没有设备 {device_id}"}) from exc
    return RedirectResponse(f"/staff/ops/ledger/{device_id}?saved=1", status_code=303)


@pages.post("/ledger/{device_id}/steps/{step}")
def device_step(request: Request, device_id: DeviceId, step: Annotated[str, Path(max_length=20)], staff: Manager,
                ops: Ops, note: Annotated[str, Form(max_length=300)] = "") -> Response:
    try:
        ops.ledger.complete_step(staff.username, device_id, step, note, client=_client(request))
    except LedgerError as exc:
        return _device_page(request, staff, ops, device_id, error=str(exc), status_code=400)
    except LedgerNotFound as exc:
        raise HTTPException(404, {"message": f"台账中没有设备 {device_id}"}) from exc
    return RedirectResponse(f"/staff/ops/ledger/{device_id}", status_code=303)


@pages.post("/ledger/{device_id}/enroll")
def device_enroll(request: Request, device_id: DeviceId, staff: Manager, ops: Ops,
                  replace_key: Annotated[bool, Form()] = False) -> Response:
    try:
        pem = ops.ledger.enroll(staff.username, device_id, replace_key=replace_key, client=_client(request))
    except (LedgerError, ValueError) as exc:
        return _device_page(request, staff, ops, device_id, error=str(exc), status_code=400)
    except LedgerNotFound as exc:
        raise HTTPException(404, {"message": f"台账中没有设备 {device_id}"}) from exc
    # The private key is shown this once and never stored (only its public half is).
    return _device_page(request, staff, ops, device_id, notice="设备密钥已生成，请立即复制到终端", pem=pem.decode())


def _alerts_page(request: Request, staff: StaffPrincipal, ops: Operations, *, error: str = "",
                 status_code: int = 200) -> Response:
    open_alerts = ops.alerts.alerts()
    recent = [a for a in ops.alerts.alerts(open_only=False, limit=100) if a.open_key is None][:30]
    return _render(request, "ops_alerts.html", {
        "staff": staff, "open_alerts": open_alerts, "recent": recent, "muted": ops.alerts.muted(),
        "silences": ops.alerts.silences(), "channels": ops.alerts.channels(),
        "notifications": ops.alerts.notifications(20), "error": error, "kinds": list(ChannelKind),
        "severities": list(Severity), "rules": ops.alerts.rules,
        "alert_tickets": ops.tickets.for_alerts([a.id for a in open_alerts])}, status_code=status_code)


@pages.get("/alerts")
def alerts_page(request: Request, staff: Viewer, ops: Ops) -> Response:
    return _alerts_page(request, staff, ops)


def _alert_change(request: Request, staff: StaffPrincipal, ops: Operations, alert_id: int,
                  change: Callable[[], Any]) -> Response:
    """A change to one alert: no such alert, 404; refused, the page again with why (400); done, back to the page."""
    try:
        change()
    except AlertNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {alert_id} 的告警"}) from exc
    except ValueError as exc:
        return _alerts_page(request, staff, ops, error=str(exc), status_code=400)
    return RedirectResponse("/staff/ops/alerts", status_code=303)


@pages.post("/alerts/{alert_id}/ack")
def alert_ack(request: Request, alert_id: ItemId, staff: Handler, ops: Ops,
              comment: Annotated[str, Form(max_length=500)] = "") -> Response:
    return _alert_change(request, staff, ops, alert_id,
                         lambda: ops.alerts.acknowledge(alert_id, staff.username, comment, client=_client(request)))


@pages.post("/alerts/{alert_id}/assign")
def alert_assign(request: Request, alert_id: ItemId, staff: Handler, ops: Ops,
                 assignee: Annotated[str, Form(max_length=60)] = "") -> Response:
    return _alert_change(request, staff, ops, alert_id,
                         lambda: ops.alerts.assign(alert_id, staff.username, assignee, client=_client(request)))


def _parse_local(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=HOSPITAL_TIME)
    except ValueError as exc:
        raise ValueError("时间格式应为 2026-01-31T08:00") from exc


@pages.post("/silences")
def silence_create(request: Request, staff: Handler, ops: Ops,
                   matchers: Annotated[str, Form(max_length=500)] = "",
                   starts_at: Annotated[str, Form(max_length=30)] = "",
                   ends_at: Annotated[str, Form(max_length=30)] = "",
                   hours: Annotated[float, Form(ge=0, le=24 * 90)] = 0,
                   window: Annotated[str, Form(max_length=40)] = "",
                   comment: Annotated[str, Form(max_length=500)] = "") -> Response:
    try:
        start = _parse_local(starts_at) or ops.monitoring.now()
        end = _parse_local(ends_at) or (start + timedelta(hours=hours) if hours else None)
        if end is None:
            raise ValueError("请填写结束时间或持续小时数")
        ops.alerts.add_silence(staff.username, [m for m in matchers.replace("，", ",").split(",")], starts_at=start,
                               ends_at=end, window=window, comment=comment, client=_client(request))
    except ValueError as exc:
        return _alerts_page(request, staff, ops, error=str(exc), status_code=400)
    return RedirectResponse("/staff/ops/alerts", status_code=303)


@pages.post("/silences/{silence_id}/expire")
def silence_expire(request: Request, silence_id: ItemId, staff: Handler, ops: Ops) -> Response:
    try:
        ops.alerts.expire_silence(silence_id, staff.username, client=_client(request))
    except LookupError as exc:
        raise HTTPException(404, {"message": f"没有编号为 {silence_id} 的静默"}) from exc
    return RedirectResponse("/staff/ops/alerts", status_code=303)


@pages.post("/channels")
def channel_create(request: Request, staff: Manager, ops: Ops, name: Annotated[str, Form(max_length=60)] = "",
                   kind: Annotated[str, Form(max_length=16)] = "wecom",
                   target: Annotated[str, Form(max_length=1000)] = "",
                   secret: Annotated[str, Form(max_length=200)] = "",
                   min_severity: Annotated[str, Form(max_length=10)] = "warning") -> Response:
    try:
        ops.alerts.add_channel(staff.username, name, kind, target, secret=secret, min_severity=min_severity,
                               client=_client(request))
    except ValueError as exc:
        return _alerts_page(request, staff, ops, error=str(exc), status_code=400)
    return RedirectResponse("/staff/ops/alerts", status_code=303)


# --- JSON ----------------------------------------------------------------------------------------------
api = APIRouter(prefix="/api/ops", tags=["operations"])


def _alert_json(row) -> dict[str, Any]:
    return {"id": row.id, "rule": row.rule, "severity": row.severity, "state": row.state, "labels": row.labels,
            "summary": row.summary, "active_since": as_utc(row.active_since).isoformat(),
            "fired_at": as_utc(row.fired_at).isoformat() if row.fired_at else None,
            "resolved_at": as_utc(row.resolved_at).isoformat() if row.resolved_at else None,
            "acknowledged_by": row.acknowledged_by, "assignee": row.assignee, "notes": row.notes}


@api.get("/fleet")
def fleet_json(_staff: Viewer, ops: Ops) -> dict[str, Any]:
    """Every device: place, online, last heartbeat, peripherals, load, today's transactions."""
    return {"devices": [{
        "id": d.id, "name": d.name, "terminal_type": d.terminal_type, "enabled": d.enabled,
        "location": {"campus": d.campus, "building": d.building, "floor": d.floor, "area": d.area},
        "online": d.online, "last_seen_at": d.last_seen_at.isoformat() if d.last_seen_at else None,
        "software_version": d.software_version, "screen": d.screen, "peripherals": d.peripherals,
        "cpu_percent": d.cpu_percent, "memory_percent": d.memory_percent, "disk_percent": d.disk_percent,
        "transactions_today": d.transactions_today, "failures_today": d.failures_today}
        for d in ops.monitoring.fleet()],
        "upstreams": [{"name": u.name, "up": u.up, "since": as_utc(u.since).isoformat(), "latency_ms": u.latency_ms,
                       "error": u.error} for u in ops.monitoring.upstreams()]}


@api.get("/alerts")
def alerts_json(_staff: Viewer, ops: Ops, open_only: bool = True,
                limit: Annotated[int, Query(ge=1, le=500)] = 200) -> dict[str, Any]:
    """Alerts, newest first; ``open_only=false`` includes resolved ones."""
    return {"alerts": [_alert_json(a) for a in ops.alerts.alerts(open_only=open_only, limit=limit)]}


@api.post("/alerts/{alert_id}/ack")
def alert_ack_json(request: Request, alert_id: ItemId, staff: Handler, ops: Ops,
                   body: dict[str, str]) -> dict[str, Any]:
    """Acknowledge with ``{"comment": …}`` (send ``X-CSRF-Token``)."""
    try:
        row = ops.alerts.acknowledge(alert_id, staff.username, body.get("comment", ""), client=_client(request))
    except AlertNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {alert_id} 的告警"}) from exc
    except ValueError as exc:
        raise HTTPException(400, {"message": str(exc)}) from exc
    return {"alert": _alert_json(row)}


router = APIRouter()
router.include_router(pages)
router.include_router(api)
