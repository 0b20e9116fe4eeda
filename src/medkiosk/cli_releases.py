"""``medkiosk release …`` and ``medkiosk logs …``: build, sign and publish releases; purge old device logs.

``keygen``, ``build`` and ``sign`` run on the release manager's workstation, where the private
release key lives; ``publish`` and ``logs purge`` run on the service host (they need the database,
never the private key).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import typer

release_app = typer.Typer(help="Releases: key, build, sign (workstation); publish (service host).",
                          no_args_is_help=True)
logs_app = typer.Typer(help="Device logs shipped by the agents.", no_args_is_help=True)


def _refuse(message: str) -> typer.Exit:
    typer.echo(f"refused: {message}", err=True)
    return typer.Exit(2)


@release_app.command("keygen")
def keygen(key_out: Path = typer.Option(..., help="where to write the private release key (keep it offline)")) -> None:
    """Make a release key pair: the private half to a file, the public half printed for the settings."""
    from medkiosk.security.release_signing import key_id, public_key_text
    from medkiosk.security.signing import generate_key, private_key_to_pem

    if key_out.exists():
        raise _refuse(f"{key_out} exists; a release key is never overwritten")
    key = generate_key()
    key_out.parent.mkdir(parents=True, exist_ok=True)
    key_out.write_bytes(private_key_to_pem(key))
    key_out.chmod(0o600)
    typer.echo(f"private key: {key_out} (key id {key_id(key)})")
    typer.echo("public key, for MEDKIOSK_RELEASE_PUBLIC_KEYS and MEDKIOSK_AGENT_RELEASE_PUBLIC_KEYS:")
    typer.echo(public_key_text(key))


@release_app.command("build")
def build(folder: Path = typer.Argument(..., help="the bundle: web/ (the kiosk page) and config/"),
          version: str = typer.Option(...), out: Path = typer.Option(None, help="default medkiosk-<version>.tar.gz"),
          requires_peripheral: list[str] = typer.Option([], help="a peripheral the page needs (repeatable)")) -> None:
    """Pack a bundle folder with its manifest into a deterministic tar.gz."""
    from medkiosk.security.release_signing import build_artifact, digest

    if not (folder / "web" / "index.html").is_file():
        raise _refuse(f"{folder}/web/index.html is missing: a bundle carries the kiosk page")
    try:
        content = build_artifact(folder, version, requires={"peripherals": requires_peripheral} if requires_peripheral else None)
    except ValueError as exc:
        raise _refuse(str(exc)) from exc
    out = out or Path(f"medkiosk-{version}.tar.gz")
    out.write_bytes(content)
    typer.echo(f"{out}: {len(content)} bytes, sha256 {digest(content)}")


@release_app.command("sign")
def sign(artifact: Path, key: Path = typer.Option(..., help="the private release key (PEM)")) -> None:
    """Sign an artifact; writes ``<artifact>.sig`` next to it."""
    from medkiosk.security.release_signing import ReleaseRefused, sign_artifact
    from medkiosk.security.signing import private_key_from_pem

    try:
        signature = sign_artifact(artifact.read_bytes(), private_key_from_pem(key.read_bytes()))
    except (ReleaseRefused, ValueError, OSError) as exc:
        raise _refuse(str(exc)) from exc
    target = artifact.with_name(artifact.name + ".sig")
    target.write_text(signature.to_json(), encoding="utf-8")
    typer.echo(f"signed {signature.version} with key {signature.key_id}: {target}")


@release_app.command("publish")
def publish(artifact: Path,
            signature: Path = typer.Option(None, help="default <artifact>.sig"),
            changes: Path = typer.Option(..., help="change list: one function added, changed or removed a line"),
            test_record: Path = typer.Option(..., help="the test record (text)"),
            actor: str = typer.Option("cli", help="who publishes, for the audit trail")) -> None:
    """Store a signed release in the service's database (checked against MEDKIOSK_RELEASE_PUBLIC_KEYS)."""
    from medkiosk.bootstrap import build_container
    from medkiosk.cli import _settings
    from medkiosk.security.release_signing import ReleaseRefused, ReleaseSignature
    from medkiosk.services.releases import ReleaseError, ReleaseService

    settings = _settings()
    signature = signature or artifact.with_name(artifact.name + ".sig")
    try:
        signed = ReleaseSignature.from_json(signature.read_text(encoding="utf-8")) if signature.exists() else None
        content = artifact.read_bytes()
        lines = changes.read_text(encoding="utf-8").splitlines()
        record = test_record.read_text(encoding="utf-8")
    except (ReleaseRefused, OSError) as exc:
        raise _refuse(str(exc)) from exc
    container = build_container(settings)
    try:
        release = ReleaseService.from_container(container).publish(content, signed, changes=lines,
                                                                   test_record=record, actor=actor)
    except ReleaseError as exc:
        raise _refuse(str(exc)) from exc
    finally:
        container.close()
    typer.echo(f"published {release.version} ({release.size} bytes, key {release.key_id})")


@logs_app.command("purge")
def purge(days: int = typer.Option(None, help="keep this many days (default MEDKIOSK_LOG_RETENTION_DAYS)")) -> None:
    """Delete device log lines older than the retention (the service also does this every hour)."""
    from medkiosk.bootstrap import build_container
    from medkiosk.cli import _settings
    from medkiosk.services.logs import LogService

    settings = _settings()
    container = build_container(settings)
    try:
        deleted = LogService.from_container(container).purge(timedelta(days=days or settings.log_retention_days))
    finally:
        container.close()
    typer.echo(f"deleted {deleted} log lines")


if __name__ == "__main__":  # pragma: no cover
    release_app(sys.argv[1:])
