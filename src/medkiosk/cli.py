"""The ``medkiosk`` command: demo, serve, agent, simulators, database and staff administration."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

app = typer.Typer(help="medkiosk: the hospital's self-service kiosk platform.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
device_app = typer.Typer(help="Kiosks and ward terminals.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(staff_app, name="staff")
app.add_typer(device_app, name="device")

from medkiosk.cli_releases import logs_app, release_app  # noqa: E402 - after the app they join

app.add_typer(release_app, name="release")
app.add_typer(logs_app, name="logs")


class SimulatorName(StrEnum):
    his = "his"
    insurance = "insurance"
    payment = "payment"
    einvoice = "einvoice"


SIMULATOR_PORTS = {SimulatorName.his: 8201, SimulatorName.insurance: 8202, SimulatorName.payment: 8203,
                   SimulatorName.einvoice: 8204}


def _settings():
    from medkiosk.logging import configure_logging
    from medkiosk.settings import get_settings

    settings = get_settings()
    configure_logging()
    return settings


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="address every part listens on"),
    port: int = typer.Option(8000, help="the kiosk service's port"),
    agent_port: int = typer.Option(8100, help="the first kiosk agent's port (a ward terminal takes the next)"),
    his_port: int = typer.Option(8201),
    insurance_port: int = typer.Option(8202),
    payment_port: int = typer.Option(8203),
    einvoice_port: int = typer.Option(8204),
    ward_terminal: bool = typer.Option(True, help="also run a ward terminal's agent"),
) -> None:
    """Run everything on one machine: simulators, the service on SQLite, kiosk agents with simulated devices."""
    from medkiosk.demo import DemoPorts, run_demo

    run_demo(DemoPorts(host, port, agent_port, his_port, insurance_port, payment_port, einvoice_port),
             ward_terminal=ward_terminal)


@app.command()
def serve(host: str = typer.Option(None), port: int = typer.Option(None),
          workers: int = typer.Option(1, min=1, help="worker processes (one per core: the service is CPU-bound "
                                                     "and each process has one interpreter lock)")) -> None:
    """Run the kiosk service (migrate the database first with ``medkiosk db upgrade``)."""
    import uvicorn

    from medkiosk.api.app import create_app
    from medkiosk.serving import KEEP_ALIVE_SECONDS

    settings = _settings()
    host, port = host or settings.host, port or settings.port
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS)
        return
    # Each worker builds its own service from the environment: the service keeps nothing between
    # requests that another process needs (orders, leases and sessions are in the database; a
    # worker that did not show the bills reads them from HIS again), like copies behind a balancer.
    uvicorn.run("medkiosk.cli:worker_app", factory=True, workers=workers, host=host, port=port,
                log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS)


def worker_app():
    """One ``serve --workers`` process's application (uvicorn's factory)."""
    from medkiosk.api.app import create_app

    return create_app(_settings())


@app.command()
def agent() -> None:
    """Run this kiosk's device agent (configured by MEDKIOSK_AGENT_* variables)."""
    from medkiosk.agent.app import run_agent
    from medkiosk.agent.config import AgentSettings
    from medkiosk.logging import configure_logging

    configure_logging()
    run_agent(AgentSettings())


@app.command()
def sim(name: SimulatorName, host: str = typer.Option("127.0.0.1"), port: int = typer.Option(None)) -> None:
    """Run one upstream simulator (his, insurance) with its control surface under /__sim__/."""
    import uvicorn

    from medkiosk.logging import configure_logging
    from medkiosk.serving import KEEP_ALIVE_SECONDS
    from medkiosk.simulators import registry

    configure_logging()
    port = port or SIMULATOR_PORTS[name]
    typer.echo(f"{name.value} simulator: http://{host}:{port}  (control: http://{host}:{port}/__sim__/)")
    uvicorn.run(registry.create(name.value), host=host, port=port, log_level="warning",
                timeout_keep_alive=KEEP_ALIVE_SECONDS)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the Alembic migrations to MEDKIOSK_DATABASE_URL."""
    from medkiosk.store.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def reconcile(day: str = typer.Option(None, "--date", help="YYYY-MM-DD business day; default yesterday")) -> None:
    """Reconcile a business day against the channel's statement, HIS, insurance and the kiosks' POS batches
    (docs/reconciliation.md)."""
    import datetime as dt

    from medkiosk.bootstrap import build_container
    from medkiosk.services.reconciliation import ReconciliationFailed, ReconciliationService

    settings = _settings()
    container = build_container(settings)
    try:
        service = ReconciliationService.from_container(container)
        try:
            business_day = dt.date.fromisoformat(day) if day else service.yesterday()
            view = service.run(business_day, triggered_by="cli")
        except ValueError as exc:
            typer.echo(f"refused: {exc}", err=True)
            raise typer.Exit(2) from exc
        except ReconciliationFailed as exc:
            typer.echo(f"run {exc.run_id} failed: {exc.message}", err=True)
            raise typer.Exit(1) from exc
    finally:
        container.close()
    assert view is not None
    typer.echo(f"run {view.id} of {view.business_date}: {view.discrepancy_count} discrepancies "
               f"(see /staff/reconciliation/{view.id})")
    raise typer.Exit(3 if view.discrepancy_count else 0)


@staff_app.command("create")
def staff_create(
    username: str,
    role: list[str] = typer.Option(["it_admin"], help="engineer, it_admin, finance, auditor (repeatable)"),
    display_name: str = typer.Option("", help="shown on staff pages"),
    password_stdin: bool = typer.Option(False, help="read the password from standard input"),
) -> None:
    """Create a staff account; without --password-stdin a strong password is generated and printed once."""
    from medkiosk.bootstrap import build_container
    from medkiosk.services.staff import create_user, generate_password

    settings = _settings()
    password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
    container = build_container(settings)
    try:
        create_user(container, username=username, display_name=display_name or username, roles=role,
                    password=password)
    except ValueError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        container.close()
    typer.echo(f"created {username} ({', '.join(role)})")
    if not password_stdin:
        typer.echo(f"password (shown once): {password}")


@device_app.command("enroll")
def device_enroll(
    device_id: str,
    terminal_type: str = typer.Option("outpatient", "--type", help="outpatient or ward"),
    location: str = typer.Option("", help="campus / building / floor / area"),
    name: str = typer.Option(""),
    key_out: Path = typer.Option(..., help="where to write the device's private key (give it to the agent)"),
    replace_key: bool = typer.Option(False, help="re-key an enrolled device"),
) -> None:
    """Enrol a kiosk and write its private key; the service keeps only the public half."""
    from medkiosk.bootstrap import build_container
    from medkiosk.settings import TerminalType

    settings = _settings()
    container = build_container(settings)
    try:
        pem = container.devices.enroll(device_id, TerminalType(terminal_type), name=name, location=location,
                                       replace_key=replace_key)
    except ValueError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        container.close()
    key_out.parent.mkdir(parents=True, exist_ok=True)
    key_out.write_bytes(pem)
    key_out.chmod(0o600)
    typer.echo(f"enrolled {device_id}; key written to {key_out}")


@device_app.command("disable")
def device_disable(device_id: str) -> None:
    """Refuse every request of a device from now on (a stolen or retired kiosk)."""
    from medkiosk.bootstrap import build_container

    container = build_container(_settings())
    try:
        container.devices.set_enabled(device_id, False)
    finally:
        container.close()
    typer.echo(f"disabled {device_id}")


if __name__ == "__main__":  # pragma: no cover
    app()
