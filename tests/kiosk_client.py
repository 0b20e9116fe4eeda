"""A kiosk as the service sees it, for integration tests: it signs what it sends, like the agent."""

from __future__ import annotations

import json

import httpx

from medkiosk.security import signing
from medkiosk.simulators.personas import PERSONAS


class Kiosk:
    def __init__(self, url: str, device_id: str, pem: bytes) -> None:
        self.url = url
        self.signer = signing.DeviceSigner(device_id, signing.private_key_from_pem(pem))
        self.client = httpx.Client(base_url=url, timeout=30)

    def request(self, method: str, path: str, payload: dict | None = None) -> httpx.Response:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = self.signer.headers(method, path, body)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return self.client.request(method, path, content=body, headers=headers)

    def post(self, path: str, payload: dict | None = None, *, expect: int = 200) -> dict:
        response = self.request("POST", path, payload if payload is not None else {})
        assert response.status_code == expect, response.text
        return response.json()

    def get(self, path: str, *, expect: int = 200) -> dict:
        response = self.request("GET", path)
        assert response.status_code == expect, response.text
        return response.json()

    # -- what the readers deliver ---------------------------------------------------------------
    def insert_insurance_card(self, key: str, *, with_card_sn: bool = True) -> dict:
        insurance = PERSONAS[key].insurance
        return self.post("/api/device/identify", {"medium": "insurance_card", "card_no": insurance.card_no,
                                                  "card_sn": insurance.card_sn if with_card_sn else None})

    def place_id_card(self, key: str) -> dict:
        persona = PERSONAS[key]
        return self.post("/api/device/identify", {"medium": "id_card", "id_number": persona.id_number,
                                                  "name": persona.name})

    def scan_e_certificate(self, key: str) -> dict:
        return self.post("/api/device/identify", {"medium": "e_certificate",
                                                  "qrcode": PERSONAS[key].insurance.ec_qr})

    def swipe_visit_card(self, key: str) -> dict:
        return self.post("/api/device/identify", {"medium": "visit_card",
                                                  "visit_card_no": PERSONAS[key].visit_card_no})
