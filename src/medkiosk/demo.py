"""Everything on one machine: simulators, the service on SQLite, kiosk agents with simulated devices.

``start_stack`` is what ``medkiosk demo`` runs and what the end-to-end tests start, so the demo a
hospital watches is the system the tests drive.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from medkiosk.serving import BackgroundServer, start_in_thread
from medkiosk.settings import Settings, TerminalType


@dataclass(frozen=True)
class DemoPorts:
    host: str = "127.0.0.1"
    service: int = 8000
    agent: int = 8100
    his: int = 8201
    insurance: int = 8202
    payment: int = 8203
    einvoice: int = 8204

    def simulator(self, name: str) -> int:
        return getattr(self, name)


@dataclass(frozen=True)
class DemoDevice:
    device_id: str
    terminal_type: TerminalType
    name: str
    location: str
    port: int = 0


@dataclass
class Stack:
    settings: Settings
    simulators: dict[str, BackgroundServer]
    service: BackgroundServer
    agents: dict[str, BackgroundServer] = field(default_factory=dict)
    container: object = None
    admin: tuple[str, str] | None = None

    @property
    def his(self) -> BackgroundServer:
        return self.simulators["his"]

    @property
    def insurance(self) -> BackgroundServer:
        return self.simulators["insurance"]

    @property
    def payment(self) -> BackgroundServer:
        return self.simulators["payment"]

    @property
    def einvoice(self) -> BackgroundServer:
        return self.simulators["einvoice"]

    def agent_url(self, device_id: str) -> str:
        return self.agents[device_id].url

    def stop(self) -> None:
        for server in [*self.agents.values(), self.service, *self.simulators.values()]:
            server.stop()
        if self.container is not None:
            self.container.close()


def default_devices(ports: DemoPorts, *, ward_terminal: bool = True) -> list[DemoDevice]:
    devices = [DemoDevice("K001", TerminalType.OUTPATIENT, "门诊一楼大厅 1 号机", "本部 / 门诊楼 / 1F / 挂号收费大厅",
                          ports.agent)]
    if ward_terminal:
        devices.append(DemoDevice("W001", TerminalType.WARD, "心内科一病区终端", "本部 / 住院楼 / 5F / 心内科一病区",
                                  ports.agent + 1 if ports.agent else 0))
    return devices


def start_stack(settings: Settings, *, ports: DemoPorts | None = None, devices: list[DemoDevice] | None = None,
                agent_overrides: dict | None = None, create_admin: bool = False) -> Stack:
    """Start simulators, migrate, start the service, enrol each device and start its agent."""
    from medkiosk.agent.app import create_agent_app
    from medkiosk.agent.config import AgentSettings
    from medkiosk.api.app import create_app
    from medkiosk.bootstrap import build_container
    from medkiosk.simulators import registry
    from medkiosk.store.migrate import upgrade

    ports = ports or DemoPorts(service=0, agent=0, his=0, insurance=0, payment=0, einvoice=0)
    devices = devices if devices is not None else default_devices(ports)
    simulators: dict[str, BackgroundServer] = {}
    try:
        for name in registry.NAMES:
            simulators[name] = start_in_thread(registry.create(name), host=ports.host, port=ports.simulator(name),
                                               name=f"{name}-sim")
    except BaseException:
        for server in simulators.values():
            server.stop()
        raise
    settings = settings.model_copy(update={f"{name}_url": server.url for name, server in simulators.items()})
    upgrade(settings.database_url)
    container = build_container(settings)
    service = start_in_thread(create_app(container=container), host=ports.host, port=ports.service, name="service")
    stack = Stack(settings, simulators, service, container=container)
    try:
        keys = Path(settings.var_dir) / "agent-keys"
        keys.mkdir(parents=True, exist_ok=True)
        for device in devices:
            pem = container.devices.enroll(device.device_id, device.terminal_type, name=device.name,
                                           location=device.location, replace_key=True)
            key_file = keys / f"{device.device_id}.pem"
            key_file.write_bytes(pem)
            key_file.chmod(0o600)
            agent_settings = AgentSettings(
                device_id=device.device_id, key_file=key_file, service_url=service.url, host=ports.host,
                port=device.port or 8100, demo=True,
                output_dir=Path(settings.var_dir) / "agent" / device.device_id, **(agent_overrides or {}))
            stack.agents[device.device_id] = start_in_thread(
                create_agent_app(agent_settings), host=ports.host, port=device.port, name=f"agent-{device.device_id}")
        if create_admin:
            from medkiosk.services.staff import ensure_demo_admin

            stack.admin = ensure_demo_admin(container)
    except BaseException:
        stack.stop()
        raise
    return stack


def run_demo(ports: DemoPorts, *, ward_terminal: bool = True) -> None:
    from medkiosk.logging import configure_logging
    from medkiosk.settings import get_settings

    configure_logging("WARNING")
    settings = get_settings()
    stack = start_stack(settings, ports=ports, devices=default_devices(ports, ward_terminal=ward_terminal),
                        create_admin=True)
    lines = [
        "medkiosk demo is running (Ctrl-C stops it)",
        f"  kiosk service        {stack.service.url}   (OpenAPI: {stack.service.url}/openapi.json)",
        f"  staff pages          {stack.service.url}/staff/",
    ]
    for device_id, server in stack.agents.items():
        kind = "outpatient kiosk" if device_id.startswith("K") else "ward terminal"
        lines.append(f"  {kind:<20} {server.url}/   ({device_id}, simulated devices, demo panel)")
    labels = {"his": "HIS simulator", "insurance": "insurance simulator", "payment": "payment simulator",
              "einvoice": "e-invoice simulator"}
    for name, server in stack.simulators.items():
        lines.append(f"  {labels.get(name, name):<20} {server.url}   (control: {server.url}/__sim__/)")
    lines.append(f"  database             {settings.database_url}")
    if stack.admin:
        username, password = stack.admin
        lines.append(f"  staff login          {username} / {password}" if password else
                     f"  staff login          {username} (password as created earlier)")
    print("\n".join(lines), flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    print("stopping …", flush=True)
    stack.stop()
