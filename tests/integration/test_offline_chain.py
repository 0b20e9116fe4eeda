"""Issue 6's whole chain on SQLite and PostgreSQL: a kiosk's heartbeats stop → its offline alert
fires after the rule's `for` → the alert becomes a ticket → the ticket is resolved → the kiosk beats
again and the alert clears after `keep_firing_for`; /metrics follows along."""

from __future__ import annotations

from test_metrics import samples, value
from test_operations import Site, site  # noqa: F401  (fixture)

BEAT = 5  # the agent's heartbeat period, seconds


def beats_for(site: Site, seconds: int, *devices: str) -> None:  # noqa: F811
    """Let ``seconds`` pass with ``devices`` beating every 5 s and the rules evaluated after each beat."""
    for _ in range(seconds // BEAT):
        site.clock.advance(seconds=BEAT)
        for device in devices:
            assert site.beat(device).status_code == 200
        site.ops.alerts.evaluate()


def offline_alert(site: Site):  # noqa: F811
    alerts = [a for a in site.alerts("device_offline") if a.labels["device"] == "K001"]
    return alerts[-1] if alerts else None


def test_a_kiosk_that_goes_quiet_is_alerted_ticketed_resolved_and_cleared_when_it_beats_again(site):  # noqa: F811
    site.enroll("K001", "本部 / 门诊楼 / 1F / 挂号区")
    site.enroll("K002", "本部 / 门诊楼 / 2F / 缴费区")  # another floor: K001 alone is a kiosk, not a network
    site.beat("K001")
    site.beat("K002")
    site.ops.alerts.evaluate()
    assert offline_alert(site) is None

    # K001 goes quiet; K002 keeps beating. The rule's `for` (30 s) counts from K001's last heartbeat.
    quiet = 0
    while offline_alert(site) is None or offline_alert(site).state != "firing":
        beats_for(site, BEAT, "K002")
        quiet += BEAT
        assert quiet <= 60, "the offline alert never fired"
        if quiet < 30:
            alert = offline_alert(site)
            assert alert is None or alert.state == "pending"
    assert quiet == 30  # fired as soon as it had held for 30 s, not 30 s after the kiosk was noticed overdue
    alert = offline_alert(site)
    assert alert.severity == "critical" and alert.labels["floor"] == "1F"
    assert site.alerts("location_network_down") == []
    scraped = samples(site.client.get("/metrics").text)
    assert value(scraped, "medkiosk_alerts", rule="device_offline", severity="critical", state="firing") == 1
    assert value(scraped, "medkiosk_kiosk_online", device="K001") == 0

    # The engineer on duty turns the alert into a ticket (once, however often it is pressed).
    csrf = site.login("liwei", "engineer")
    headers = {"X-CSRF-Token": csrf}
    made = site.client.post(f"/api/ops/alerts/{alert.id}/ticket", headers=headers)
    again = site.client.post(f"/api/ops/alerts/{alert.id}/ticket", headers=headers)
    assert made.status_code == 200 and made.json()["created"] is True and again.json()["created"] is False
    ticket = made.json()["ticket"]
    assert again.json()["ticket"]["id"] == ticket["id"]
    assert (ticket["source"], ticket["priority"], ticket["device_id"]) == ("alert", "p1", "K001")

    def move(to: str, **form) -> None:
        response = site.client.post(f"/staff/ops/tickets/{ticket['id']}/move",
                                    data={"to": to, "csrf_token": csrf, **form}, follow_redirects=False)
        assert response.status_code == 303, response.text

    move("assigned")
    move("in_progress")
    beats_for(site, 10, "K002")  # the engineer walks to the kiosk: still quiet, still firing
    assert offline_alert(site).state == "firing"
    move("resolved", cause="网线松动，终端失联", action="重新插紧网线并确认心跳恢复")
    assert site.ops.tickets.get(ticket["id"]).row.state == "resolved"
    # Resolving the ticket does not clear the alert: only the kiosk's heartbeats do.
    assert offline_alert(site).state == "firing"

    # Heartbeats come back: the alert keeps firing for keep_firing_for (30 s), then resolves.
    assert site.beat("K001").status_code == 200
    site.ops.alerts.evaluate()
    assert offline_alert(site).state == "firing"
    beats_for(site, 25, "K001", "K002")
    assert offline_alert(site).state == "firing"
    beats_for(site, 10, "K001", "K002")
    cleared = offline_alert(site)
    assert cleared.id == alert.id and cleared.state == "resolved" and cleared.resolved_at is not None
    assert [a for a in site.ops.alerts.alerts() if a.rule == "device_offline"] == []  # nothing open
    scraped = samples(site.client.get("/metrics").text)
    assert value(scraped, "medkiosk_alerts", rule="device_offline", severity="critical", state="firing") == 0
    assert value(scraped, "medkiosk_kiosks", state="online") == 2 and value(scraped, "medkiosk_kiosks", state="offline") == 0
    # The ticket stays for the IT centre to verify and close; the alert is not reopened by it.
    assert site.ops.tickets.get(ticket["id"]).row.state == "resolved"
