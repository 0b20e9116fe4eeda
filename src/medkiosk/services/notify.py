"""Alert notifications: WeCom and DingTalk group robots, a generic webhook, and e-mail.

Robots get markdown in the JSON shape each one documents (WeCom: ``{"msgtype": "markdown",
"markdown": {"content": …}}``; DingTalk: ``{"msgtype": "markdown", "markdown": {"title", "text"}}``,
signed with ``timestamp`` and ``sign`` query parameters when the robot has a secret). The generic
webhook gets Alertmanager's webhook body (version 4), so tools written for Alertmanager read it.
E-mail goes through apprise (a ``mailto://`` or ``mailtos://`` URL). Alerts hold no patient data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import httpx

from medkiosk.domain.alerts import Alert, Notification

HOSPITAL_TIME = timezone(timedelta(hours=8))
RULE_TITLES = {
    "device_offline": "设备离线", "location_network_down": "区域网络中断", "paper_low": "纸将尽",
    "paper_out": "缺纸", "card_reader_fault": "读卡器故障", "printer_fault": "打印机故障",
    "error_rate_spike": "交易失败率异常", "payment_anomaly": "缴费异常", "upstream_down": "上游系统不可用",
    "ticket_sla_warning": "工单时限将到", "ticket_sla_breached": "工单超时",
}
SEVERITY_TITLES = {"critical": "严重", "warning": "警告", "info": "提示"}


class ChannelKind(StrEnum):
    WECOM = "wecom"
    """企业微信群机器人 webhook."""
    DINGTALK = "dingtalk"
    """钉钉群机器人 webhook (optionally signed)."""
    WEBHOOK = "webhook"
    """Any HTTP receiver: Alertmanager's webhook JSON."""
    EMAIL = "email"
    """E-mail through apprise (mailto:// URL)."""


@dataclass(frozen=True)
class Channel:
    id: int
    name: str
    kind: ChannelKind
    target: str
    secret: str = ""
    min_severity: str = "warning"


class DeliveryFailed(Exception):
    pass


def _local(at: datetime | None) -> str:
    return at.astimezone(HOSPITAL_TIME).strftime("%m-%d %H:%M:%S") if at else ""


def render_markdown(note: Notification, *, base_url: str = "") -> tuple[str, str]:
    """A title and a short markdown body in Chinese for robots and e-mail."""
    rules = {a.rule for a in (*note.firing, *note.resolved)}
    title_rule = "、".join(RULE_TITLES.get(r, r) for r in sorted(rules))
    status = "告警" if note.firing else "已恢复"
    title = f"【{status}】{title_rule}（{len(note.firing)} 条告警，{len(note.resolved)} 条恢复）"
    lines = [f"### {title}"]
    for alert in note.firing:
        lines.append(f"- **{SEVERITY_TITLES.get(alert.severity.value, alert.severity.value)}** {alert.summary}"
                     f"（自 {_local(alert.active_since)}）")
    for alert in note.resolved:
        lines.append(f"- 已恢复：{alert.summary}（{_local(alert.resolved_at)}）")
    if base_url:
        lines.append(f"\n[查看告警]({base_url.rstrip('/')}/staff/ops/alerts)")
    return title, "\n".join(lines)


def _alert_json(alert: Alert, status: str) -> dict[str, Any]:
    return {"status": status, "labels": alert.all_labels(), "annotations": {"summary": alert.summary},
            "startsAt": alert.active_since.isoformat(),
            "endsAt": alert.resolved_at.isoformat() if alert.resolved_at else "0001-01-01T00:00:00Z",
            "fingerprint": alert.fingerprint}


def alertmanager_body(note: Notification, receiver: str) -> dict[str, Any]:
    alerts = [_alert_json(a, "firing") for a in note.firing] + [_alert_json(a, "resolved") for a in note.resolved]
    return {"version": "4", "groupKey": note.group_key, "status": "firing" if note.firing else "resolved",
            "receiver": receiver, "groupLabels": note.group_labels, "commonLabels": note.group_labels,
            "commonAnnotations": {}, "externalURL": "", "truncatedAlerts": 0, "alerts": alerts}


def dingtalk_url(url: str, secret: str, *, now_ms: int | None = None) -> str:
    """DingTalk's signed robot URL: HMAC-SHA256 of ``"{timestamp}\\n{secret}"`` keyed by the secret."""
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


class Notifier:
    def __init__(self, *, timeout: float = 5.0, base_url: str = "", client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout)
        self._base_url = base_url

    def close(self) -> None:
        self._client.close()

    def send(self, channel: Channel, note: Notification) -> None:
        """Deliver one notification; raises :class:`DeliveryFailed` with a short reason."""
        title, text = render_markdown(note, base_url=self._base_url)
        if channel.kind is ChannelKind.EMAIL:
            self._email(channel, title, text)
            return
        if channel.kind is ChannelKind.WECOM:
            url, body = channel.target, {"msgtype": "markdown", "markdown": {"content": text}}
        elif channel.kind is ChannelKind.DINGTALK:
            url, body = dingtalk_url(channel.target, channel.secret), {
                "msgtype": "markdown", "markdown": {"title": title, "text": text}}
        else:
            url, body = channel.target, alertmanager_body(note, channel.name)
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(type(exc).__name__) from exc
        if response.status_code >= 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")
        if channel.kind in (ChannelKind.WECOM, ChannelKind.DINGTALK):
            # Both robots answer 200 with {"errcode": 0, "errmsg": "ok"}; anything else is a refusal.
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            if isinstance(answer, dict) and answer.get("errcode", 0) != 0:
                raise DeliveryFailed(f"errcode {answer.get('errcode')}: {str(answer.get('errmsg', ''))[:100]}")

    def _email(self, channel: Channel, title: str, text: str) -> None:
        import apprise

        sender = apprise.Apprise()
        if not sender.add(channel.target):
            raise DeliveryFailed("e-mail URL not understood (expected mailto:// or mailtos://)")
        if not sender.notify(title=title, body=text, body_format=apprise.NotifyFormat.MARKDOWN):
            raise DeliveryFailed("e-mail not accepted by the mail server")
