"""Release artifacts for tests: a small page bundle, built and signed with a throwaway release key."""

from __future__ import annotations

from pathlib import Path

from medkiosk.security.release_signing import ReleaseSignature, build_artifact, public_key_text, sign_artifact
from medkiosk.security.signing import generate_key


class ReleaseKit:
    """A release manager's workstation: one release key, artifacts built and signed with it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = generate_key()

    @property
    def public_key(self) -> str:
        return public_key_text(self.key)

    def bundle(self, version: str, *, index: bool = True, extra: dict[str, bytes] | None = None) -> Path:
        root = self.folder / f"bundle-{version}"
        (root / "web").mkdir(parents=True, exist_ok=True)
        if index:
            (root / "web" / "index.html").write_text(
                f"<!doctype html><title>自助机</title><p>page {version}</p>", encoding="utf-8")
        (root / "web" / "app.js").write_text(f"window.PAGE_VERSION = {version!r};\n", encoding="utf-8")
        (root / "config").mkdir(exist_ok=True)
        (root / "config" / "kiosk.json").write_text('{"idle_seconds": 120}\n', encoding="utf-8")
        for name, data in (extra or {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        return root

    def artifact(self, version: str, *, requires: dict | None = None, index: bool = True) -> tuple[bytes, ReleaseSignature]:
        content = build_artifact(self.bundle(version, index=index), version, requires=requires)
        return content, sign_artifact(content, self.key)
