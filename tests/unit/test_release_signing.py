"""Release artifacts: deterministic builds, Ed25519 signatures over version and digest, safe unpacking."""

from __future__ import annotations

import dataclasses
import io
import tarfile

import pytest

from medkiosk.security.release_signing import (ReleaseRefused, build_artifact, check_unpacked, digest,
                                               parse_key_list, read_manifest, sign_artifact, unpack, verify_artifact)
from medkiosk.security.signing import generate_key
from release_fixtures import ReleaseKit


@pytest.fixture
def kit(tmp_path):
    return ReleaseKit(tmp_path)


def trusted(kit):
    return parse_key_list(kit.public_key)


def refusal(content, signed, keys) -> str:
    with pytest.raises(ReleaseRefused) as caught:
        verify_artifact(content, signed, keys)
    return caught.value.reason


def test_the_same_folder_builds_the_same_bytes(kit):
    folder = kit.bundle("1.0.0")
    assert build_artifact(folder, "1.0.0") == build_artifact(folder, "1.0.0")


def test_a_signed_artifact_verifies_and_names_its_files(kit):
    content, signed = kit.artifact("1.0.0", requires={"peripherals": ["receipt_printer"]})
    manifest = verify_artifact(content, signed, trusted(kit))
    assert manifest.version == "1.0.0"
    assert set(manifest.files) == {"web/index.html", "web/app.js", "config/kiosk.json"}
    assert manifest.required_peripherals == ["receipt_printer"]
    assert signed.sha256 == digest(content) and signed.size == len(content)


def test_an_unsigned_artifact_is_refused(kit):
    content, signed = kit.artifact("1.0.0")
    assert refusal(content, None, trusted(kit)) == "unsigned"
    assert refusal(content, dataclasses.replace(signed, signature=""), trusted(kit)) == "unsigned"


def test_a_tampered_artifact_is_refused(kit):
    content, signed = kit.artifact("1.0.0")
    tampered = content[:-10] + bytes(b ^ 0xFF for b in content[-10:])
    assert refusal(tampered, signed, trusted(kit)) == "tampered"


def test_a_rebuilt_artifact_with_a_changed_page_is_refused_under_the_old_signature(kit):
    content, signed = kit.artifact("1.0.0")
    folder = kit.bundle("1.0.0", extra={"web/evil.js": b"steal()"})
    assert refusal(build_artifact(folder, "1.0.0"), signed, trusted(kit)) == "tampered"


def test_an_artifact_signed_with_another_key_is_refused(kit, tmp_path):
    stranger = ReleaseKit(tmp_path / "stranger")
    content, signed = stranger.artifact("1.0.0")
    assert refusal(content, signed, trusted(kit)) == "unknown_key"


def test_a_signature_claiming_a_trusted_key_id_but_made_with_another_key_is_refused(kit):
    content, _ = kit.artifact("1.0.0")
    forged = sign_artifact(content, generate_key())
    forged = dataclasses.replace(forged, key_id=sign_artifact(content, kit.key).key_id)
    assert refusal(content, forged, trusted(kit)) == "bad_signature"


def test_an_old_signed_artifact_cannot_be_passed_off_as_a_newer_version(kit):
    content, signed = kit.artifact("1.0.0")
    assert refusal(content, dataclasses.replace(signed, version="2.0.0"), trusted(kit)) == "bad_signature"


def test_unpacking_writes_exactly_the_manifest_and_a_later_change_is_noticed(kit, tmp_path):
    content, signed = kit.artifact("1.0.0")
    manifest = verify_artifact(content, signed, trusted(kit))
    unpack(content, manifest, tmp_path / "out")
    assert (tmp_path / "out" / "web" / "index.html").read_text(encoding="utf-8").endswith("page 1.0.0</p>")
    assert check_unpacked(tmp_path / "out", manifest) is None
    (tmp_path / "out" / "web" / "app.js").write_text("changed", encoding="utf-8")
    assert check_unpacked(tmp_path / "out", manifest) == "web/app.js was changed"


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_paths_outside_the_folder_and_links_are_refused(kit, tmp_path):
    manifest_bytes = b'{"format": 1, "version": "1.0.0", "files": {}}'
    escaping = _tar([_file("manifest.json", manifest_bytes), _file("../../etc/cron.d/x", b"boom")])
    with pytest.raises(ReleaseRefused) as caught:
        unpack(escaping, read_manifest(escaping), tmp_path / "out")
    assert caught.value.reason == "bad_artifact"
    link = tarfile.TarInfo("web/index.html")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    linked = _tar([_file("manifest.json", manifest_bytes), (link, None)])
    with pytest.raises(ReleaseRefused):
        unpack(linked, read_manifest(linked), tmp_path / "out2")
    assert not (tmp_path / "out2" / "web" / "index.html").exists()


def test_something_that_is_not_an_artifact_is_refused(kit):
    with pytest.raises(ReleaseRefused) as caught:
        read_manifest(b"not a tar at all")
    assert caught.value.reason == "bad_artifact"


def test_a_key_list_with_a_typo_is_an_error(kit):
    assert len(parse_key_list(f"{kit.public_key}, {kit.public_key}")) == 1
    with pytest.raises(ValueError):
        parse_key_list("not-a-key")
