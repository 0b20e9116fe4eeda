import base64

import pytest
from pydantic import ValidationError

from medkiosk.settings import Environment, Settings

STRONG = "x" * 40
KEY = base64.b64encode(b"k" * 32).decode()


def test_the_default_database_is_a_sqlite_file_under_var(monkeypatch):
    monkeypatch.delenv("MEDKIOSK_DATABASE_URL", raising=False)
    assert Settings().database_url == "sqlite:///./var/medkiosk.db"


def test_the_environment_switches_to_postgresql(monkeypatch):
    monkeypatch.setenv("MEDKIOSK_DATABASE_URL", "postgresql://medkiosk@db/medkiosk")
    assert Settings().database_url.startswith("postgresql://")


def test_production_refuses_the_default_secret():
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment=Environment.PRODUCTION, data_key=KEY)


def test_production_refuses_the_default_data_key():
    with pytest.raises(ValidationError, match="DATA_KEY"):
        Settings(environment=Environment.PRODUCTION, secret_key=STRONG)


def test_production_starts_with_its_own_secrets(tmp_path, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text(STRONG)
    monkeypatch.setenv("MEDKIOSK_SECRET_KEY_FILE", str(secret_file))
    settings = Settings(environment=Environment.PRODUCTION, data_key=KEY)
    assert settings.secret_key.get_secret_value() == STRONG
    assert STRONG not in repr(settings)


def test_a_data_key_of_the_wrong_length_is_refused():
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(data_key=base64.b64encode(b"short").decode())
