"""Simulators per test module over real HTTP, reset before each test, and the service wired to them."""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from medkiosk.api.app import create_app
from medkiosk.bootstrap import Container, build_container
from medkiosk.serving import BackgroundServer, start_in_thread
from medkiosk.settings import Settings
from medkiosk.simulators import registry


def simulator_fixtures(create_app: Callable[[], Any], *, name: str, server: str = "server",
                       client: str = "sim") -> tuple[Any, Any]:
    """Fixtures ``server`` (the running simulator, module-wide) and ``client`` (its control surface).

    Assign both in the test module, under the names given: ``server, sim = simulator_fixtures(...)``.
    """

    @pytest.fixture(scope="module", name=server)
    def running() -> Iterator[BackgroundServer]:
        background = start_in_thread(create_app(), name=name)
        yield background
        background.stop()

    @pytest.fixture(name=client)
    def control(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
        """The simulator's control surface, reset to its starting data before each test."""
        background: BackgroundServer = request.getfixturevalue(server)
        with httpx.Client(base_url=background.url, timeout=5) as http:
            http.post("/__sim__/reset").raise_for_status()
            yield http

    return running, control


def simulators_fixture(*names: str) -> Any:
    """Fixture ``simulators``: the named simulators (every one when none is named), module-wide, by name.

    Assign it in the test module: ``simulators = simulators_fixture()``.
    """

    @pytest.fixture(scope="module", name="simulators")
    def running() -> Iterator[dict[str, BackgroundServer]]:
        servers = {name: start_in_thread(registry.create(name), name=f"{name}-sim") for name in names or registry.NAMES}
        yield servers
        for server in servers.values():
            server.stop()

    return running


def service_container(database_url: str, simulators: dict[str, BackgroundServer], **settings: Any) -> Container:
    """A container wired to ``simulators``, reset to their starting data first; no payment recovery
    unless ``settings`` asks for it, so a test drives every payment itself."""
    for server in simulators.values():
        httpx.post(server.url + "/__sim__/reset")
    urls = {f"{name}_url": server.url for name, server in simulators.items()}
    return build_container(Settings(**{"database_url": database_url, "recovery_seconds": 0, **urls, **settings}))


@contextmanager
def serving(container: Container) -> Iterator[str]:
    """The service on ``container`` over real HTTP, by its URL; then stopped, and the container closed."""
    service = start_in_thread(create_app(container=container), name="service")
    try:
        yield service.url
    finally:
        service.stop()
        container.close()


def sim_now(sim: httpx.Client) -> dt.datetime:
    """The HIS simulator's clock (``sim``: its control client)."""
    return dt.datetime.fromisoformat(sim.get("/__sim__/clock").json()["now"])


def advance_to(sim: httpx.Client, moment: dt.datetime) -> None:
    """Move the HIS simulator's clock forward to ``moment``."""
    seconds = (moment - sim_now(sim)).total_seconds()
    sim.post("/__sim__/clock", json={"advance_seconds": seconds}).raise_for_status()
