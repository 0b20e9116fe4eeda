"""Device identity over real HTTP: only enrolled, enabled kiosks with fresh signatures get in."""

import json

import httpx
import pytest
from sqlalchemy import select

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.security import signing
from medkiosk.serving import start_in_thread
from medkiosk.settings import Settings, TerminalType
from medkiosk.store.models import DeviceState, Event


@pytest.fixture
def service(database_url):
    container = build_container(Settings(database_url=database_url))
    server = start_in_thread(create_app(container=container), name="service")
    pem = container.devices.enroll("K001", TerminalType.OUTPATIENT, location="门诊楼 1F")
    signer = signing.DeviceSigner("K001", signing.private_key_from_pem(pem))
    yield server, container, signer
    server.stop()
    container.close()


def send(server, signer, path, payload, *, headers=None):
    body = json.dumps(payload).encode()
    headers = headers if headers is not None else signer.headers("POST", path, body)
    return httpx.post(server.url + path, content=body, headers={**headers, "Content-Type": "application/json"})


HEARTBEAT = {"software_version": "0.1.0", "peripherals": {"receipt_printer": {"state": "warning", "detail": "纸将尽"}}}


def refusals(container):
    with container.uow() as uow:
        return [e.details["reason"] for e in uow.session.scalars(
            select(Event).where(Event.kind == "device_auth_refused").order_by(Event.id))]


def test_a_signed_heartbeat_is_stored_as_the_devices_last_state(service):
    server, container, signer = service
    assert send(server, signer, "/api/device/heartbeat", HEARTBEAT).status_code == 200
    with container.uow() as uow:
        state = uow.session.get(DeviceState, "K001")
        assert state.peripherals["receipt_printer"]["state"] == "warning"
        assert state.software_version == "0.1.0"


def test_an_unsigned_request_is_refused_and_logged(service):
    server, container, _ = service
    response = httpx.post(server.url + "/api/device/heartbeat", json=HEARTBEAT)
    assert response.status_code == 401
    assert refusals(container) == ["unsigned"]


def test_a_replayed_request_is_refused(service):
    server, container, signer = service
    body = json.dumps(HEARTBEAT).encode()
    headers = signer.headers("POST", "/api/device/heartbeat", body)
    assert send(server, signer, "/api/device/heartbeat", HEARTBEAT, headers=headers).status_code == 200
    assert send(server, signer, "/api/device/heartbeat", HEARTBEAT, headers=headers).status_code == 401
    assert refusals(container) == ["replayed"]


def test_a_tampered_body_is_refused(service):
    server, container, signer = service
    headers = signer.headers("POST", "/api/device/heartbeat", json.dumps(HEARTBEAT).encode())
    tampered = {**HEARTBEAT, "software_version": "9.9.9"}
    assert send(server, signer, "/api/device/heartbeat", tampered, headers=headers).status_code == 401
    assert refusals(container) == ["bad_signature"]


def test_an_unknown_device_is_refused(service):
    server, container, _ = service
    stranger = signing.DeviceSigner("K999", signing.generate_key())
    assert send(server, stranger, "/api/device/heartbeat", HEARTBEAT).status_code == 401
    assert refusals(container) == ["unknown"]


def test_a_disabled_device_is_refused(service):
    server, container, signer = service
    container.devices.set_enabled("K001", False)
    assert send(server, signer, "/api/device/heartbeat", HEARTBEAT).status_code == 401
    assert refusals(container) == ["disabled"]


def test_an_old_signature_is_refused(service):
    server, container, signer = service
    body = json.dumps(HEARTBEAT).encode()
    import time

    headers = signer.headers("POST", "/api/device/heartbeat", body, now=time.time() - 600)
    assert send(server, signer, "/api/device/heartbeat", HEARTBEAT, headers=headers).status_code == 401
    assert refusals(container) == ["expired"]


def test_the_service_publishes_its_openapi_document(service):
    server, _, _ = service
    document = httpx.get(server.url + "/openapi.json").json()
    assert "/api/device/identify" in document["paths"]
    assert "/api/kiosk/session" in document["paths"]



def test_nonces_are_forgotten_only_when_their_timestamps_alone_refuse_a_replay(database_url):
    from medkiosk.services.clock import FrozenClock
    from medkiosk.services.devices import DeviceAuthError, DeviceService

    clock = FrozenClock()
    container = build_container(Settings(database_url=database_url), clock=clock)
    try:
        devices = DeviceService(container.uow, clock, max_skew=60)
        signer = signing.DeviceSigner("K001", signing.private_key_from_pem(
            devices.enroll("K001", TerminalType.OUTPATIENT)))
        body = json.dumps(HEARTBEAT).encode()
        headers = signer.headers("POST", "/api/device/heartbeat", body, now=clock.now().timestamp())
        devices.authenticate(headers, "POST", "/api/device/heartbeat", body)
        clock.advance(seconds=90)
        assert devices.purge_nonces() == 0  # still inside twice the skew
        clock.advance(seconds=31)
        assert devices.purge_nonces() == 1
        with pytest.raises(DeviceAuthError) as refused:
            devices.authenticate(headers, "POST", "/api/device/heartbeat", body)
        assert refused.value.reason == "expired"
    finally:
        container.close()


def test_the_signature_covers_the_path_and_query_exactly_as_sent(service):
    server, _, signer = service
    path = "/api/kiosk/session?note=%E6%8C%82%E5%8F%B7"
    response = httpx.get(server.url + path, headers=signer.headers("GET", path))
    assert response.status_code == 200
    decoded = "/api/kiosk/session?note=挂号"
    assert httpx.get(server.url + path, headers=signer.headers("GET", decoded)).status_code == 401
