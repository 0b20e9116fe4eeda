import pytest

from medkiosk.security import signing

KEY = signing.generate_key()
PUBLIC = KEY.public_key()
SIGNER = signing.DeviceSigner("K001", KEY)
NOW = 1_800_000_000.0
BODY = b'{"medium":"id_card"}'


def check(headers, *, method="POST", path="/api/device/identify", body=BODY, now=NOW):
    signed = signing.read_signed_headers(headers)
    signing.verify(PUBLIC, signed, headers[signing.HEADER_SIGNATURE], method, path, body, now=now)
    return signed


def test_a_good_signature_verifies():
    headers = SIGNER.headers("POST", "/api/device/identify", BODY, now=NOW)
    assert check(headers).device_id == "K001"


@pytest.mark.parametrize("tamper", ["body", "path", "method", "device"])
def test_any_tampering_breaks_the_signature(tamper):
    headers = SIGNER.headers("POST", "/api/device/identify", BODY, now=NOW)
    kwargs = {}
    if tamper == "body":
        kwargs["body"] = b'{"medium":"insurance_card"}'
    elif tamper == "path":
        kwargs["path"] = "/api/device/heartbeat"
    elif tamper == "method":
        kwargs["method"] = "PUT"
    else:
        headers = {**headers, signing.HEADER_DEVICE: "K002"}
    with pytest.raises(signing.SignatureError) as err:
        check(headers, **kwargs)
    assert err.value.reason == "bad_signature"


def test_another_devices_key_does_not_verify():
    other = signing.DeviceSigner("K001", signing.generate_key())
    with pytest.raises(signing.SignatureError):
        check(other.headers("POST", "/api/device/identify", BODY, now=NOW))


def test_an_old_or_future_timestamp_is_expired():
    headers = SIGNER.headers("POST", "/api/device/identify", BODY, now=NOW)
    with pytest.raises(signing.SignatureError) as err:
        check(headers, now=NOW + 61)
    assert err.value.reason == "expired"
    with pytest.raises(signing.SignatureError):
        check(headers, now=NOW - 61)


def test_a_request_without_signature_headers_is_unsigned():
    with pytest.raises(signing.SignatureError) as err:
        signing.read_signed_headers({"X-Medkiosk-Device": "K001"})
    assert err.value.reason == "unsigned"


def test_keys_round_trip_through_pem_and_text():
    pem = signing.private_key_to_pem(KEY)
    again = signing.private_key_from_pem(pem)
    assert signing.public_key_text(again) == signing.public_key_text(PUBLIC)
