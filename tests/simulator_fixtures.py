"""One simulator per test module over real HTTP, and its control surface reset before each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from medkiosk.serving import BackgroundServer, start_in_thread


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
