"""Run ASGI apps with uvicorn in a background thread: used by the demo and by the test suite."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

# How long our servers keep an idle HTTP connection open. It must outlast the clients' own idle
# expiry (httpx: 5 s), or a client can send a request on a connection the server is closing at
# that moment and get no reply: a read that may or may not have happened, shown to the patient as
# "outcome unknown". uvicorn's default is exactly 5 s. 75 s is what nginx and most balancers use.
KEEP_ALIVE_SECONDS = 75


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class BackgroundServer:
    """A uvicorn server on its own thread; ``url`` is where it answers."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_in_thread(app, *, host: str = "127.0.0.1", port: int = 0, name: str = "server",
                    startup_timeout: float = 20.0) -> BackgroundServer:
    """Start ``app`` and return once it accepts connections (port 0 picks a free one)."""
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=2, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{name}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"{name} failed to start on {host}:{port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not start on {host}:{port} within {startup_timeout}s")
        time.sleep(0.02)
    return BackgroundServer(server, thread, host, port)
