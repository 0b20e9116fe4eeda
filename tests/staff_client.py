"""A member of staff as the service sees one, for integration tests: logged in through the form, with the CSRF token."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

PASSWORD = "Ward-Round-0800"


def login(client: TestClient | httpx.Client, username: str, password: str = PASSWORD) -> str:
    """Log in and return the session's CSRF token."""
    response = client.post("/staff/login", data={"username": username, "password": password}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client.get("/api/staff/me").json()["csrf_token"]
