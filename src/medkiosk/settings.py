"""Typed settings from the environment (prefix ``MEDKIOSK_``), failing fast on unsafe production values.

Every secret may also come from a file: ``MEDKIOSK_SECRET_KEY_FILE=/run/secrets/key`` reads the
key from that file (the usual way with systemd credentials or container secrets).
"""

from __future__ import annotations

import base64
import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medkiosk.domain.registration import HalfDayHours, RegistrationRules
from medkiosk.simulators.personas import HOSPITAL_ADMDVS, HOSPITAL_CODE, HOSPITAL_NAME

# Published in the docs so nobody mistakes them for real secrets; production refuses them.
DEFAULT_SECRET_KEY = "medkiosk-demo-secret-key-change-me"
DEFAULT_DATA_KEY = base64.b64encode(b"medkiosk-demo-data-key-change-me").decode()  # 32 bytes


class Environment(StrEnum):
    DEMO = "demo"
    """One machine, simulators, the demo device panel visible."""
    DEVELOPMENT = "development"
    """A developer's machine: like demo, without the panel unless asked for."""
    PRODUCTION = "production"
    """A hospital: real upstreams, no demo panel, no default secrets."""


class TerminalType(StrEnum):
    OUTPATIENT = "outpatient"
    """门诊自助机: refuses patients who are currently admitted."""
    WARD = "ward"
    """住院病区终端: serves admitted patients."""


def _read_secret_files(values: dict) -> dict:
    """Fill ``name`` from ``MEDKIOSK_<NAME>_FILE`` when that variable points at a file."""
    for name in ("secret_key", "data_key", "database_url", "metrics_token"):
        path = os.environ.get(f"MEDKIOSK_{name.upper()}_FILE")
        if path and name not in values:
            values[name] = Path(path).read_text(encoding="utf-8").strip()
    return values


class Settings(BaseSettings):
    """The kiosk service's settings. See docs/configuration.md for each one."""

    model_config = SettingsConfigDict(env_prefix="MEDKIOSK_", env_file=None, extra="ignore")

    environment: Environment = Environment.DEMO
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    data_key: SecretStr = Field(default=SecretStr(DEFAULT_DATA_KEY),
                                description="base64 of 32 bytes: AES-256-GCM key for patient data at rest")
    database_url: str = "sqlite:///./var/medkiosk.db"
    var_dir: Path = Path("./var")

    # Where the service listens.
    host: str = "127.0.0.1"
    port: int = 8000

    # Upstreams (the demo points them at the simulators).
    his_url: str = "http://127.0.0.1:8201"
    insurance_url: str = "http://127.0.0.1:8202"
    payment_url: str = "http://127.0.0.1:8203"
    einvoice_url: str = "http://127.0.0.1:8204"
    merchant_id: str = Field(default="1900000109", description="the hospital's merchant number at the payment channel")
    recovery_seconds: float = Field(default=10, ge=0, description="how often unfinished payments are resumed; 0 = never")
    pay_window_seconds: int = Field(default=300, ge=60, le=1800, description="how long a QR order waits for the patient")
    reconcile_at: str = Field(default="", pattern=r"^$|^([01]\d|2[0-3]):[0-5]\d$",
                              description="HH:MM hospital time of the daily reconciliation of yesterday; empty = off")
    upstream_timeout_seconds: float = 10.0

    # The hospital as the insurance platform knows it.
    hospital_code: str = HOSPITAL_CODE
    hospital_name: str = HOSPITAL_NAME
    hospital_admdvs: str = HOSPITAL_ADMDVS
    timezone: str = Field(default="Asia/Shanghai", description="the hospital's local time, for paper and pages")

    # The kiosk session.
    session_idle_seconds: int = Field(default=120, ge=30, le=1800)
    session_warn_seconds: int = Field(default=30, ge=20)
    session_max_seconds: int = Field(default=1800, ge=60, description="hard limit however active")

    # Registration (挂号) rules (docs/configuration.md#registration); the day is MEDKIOSK_TIMEZONE's.
    registration_morning_hours: str = Field(default="08:00-12:00", description="HH:MM-HH:MM of the morning clinics")
    registration_afternoon_hours: str = Field(default="13:30-17:30", description="HH:MM-HH:MM of the afternoon clinics")
    registration_horizon_days: int = Field(default=7, ge=0, le=90, description="today and this many days ahead")
    registration_pick_up_minutes_before: int = Field(default=60, ge=0, le=720,
                                                     description="pick-up opens this long before the half-day starts")
    registration_pick_up_days_before: int = Field(default=0, ge=0, le=30,
                                                  description="… this many days before the appointment's day")
    registration_closes_minutes_before_end: int = Field(default=0, ge=0,
                                                        description="same-day registration stops this long "
                                                                    "before the half-day ends")
    registration_cancel_minutes_before_start: int = Field(default=0, ge=0, le=1440,
                                                          description="退号 at a kiosk until this long before "
                                                                      "the half-day starts")
    registration_reprint_limit: int = Field(default=2, ge=0, le=10, description="reprints of a day's slip; 0 = off")

    # Device request signatures.
    signature_max_skew_seconds: int = Field(default=60, ge=5, le=600)

    # Staff sessions.
    staff_session_hours: int = Field(default=8, ge=1, le=24)

    # Operations: monitoring and alerts (docs/operations-platform.md).
    ops_evaluation_seconds: float = Field(default=2, ge=0, description="alert evaluation period; 0 = never")
    ops_probe_seconds: float = Field(default=15, ge=0, description="upstream health probe period; 0 = never")
    ops_heartbeat_grace_seconds: int = Field(default=10, ge=0, le=600)
    ops_offline_for_seconds: int = Field(default=30, ge=5, le=3600)
    ops_business_hours: str = Field(default="1-5 07:00-18:00; 6-7 08:00-12:00",
                                    description="ISO weekdays and hours, ';' between windows")

    # Releases and device logs (docs/releases.md, docs/logs.md).
    release_public_keys: str = Field(default="", description="release keys (base64, comma-separated) whose "
                                                             "signatures publishing accepts")
    release_evaluate_seconds: float = Field(default=15, ge=0, description="rollout gate period; 0 = never")
    log_retention_days: int = Field(default=30, ge=1, le=3650, description="device log lines kept this long")

    # Prometheus /metrics (docs/operations-platform.md): open on the intranet unless a token is set.
    metrics_token: SecretStr | None = Field(default=None, description="when set, /metrics wants "
                                                                      "'Authorization: Bearer <token>'")

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, values: dict) -> dict:
        return _read_secret_files(dict(values))

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"MEDKIOSK_TIMEZONE: unknown time zone {value!r}") from exc
        return value

    @field_validator("registration_morning_hours", "registration_afternoon_hours")
    @classmethod
    def _registration_hours(cls, value: str, info: ValidationInfo) -> str:
        try:
            return str(HalfDayHours.parse(value))
        except ValueError as exc:
            raise ValueError(f"MEDKIOSK_{info.field_name.upper()}: {exc}") from None

    @model_validator(mode="after")
    def _registration_rules_hold(self) -> Settings:
        try:
            self.registration_rules()
        except ValueError as exc:
            raise ValueError(f"MEDKIOSK_REGISTRATION_*: {exc}") from None
        return self

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty variable means no token
        if len(value.get_secret_value()) < 16:
            raise ValueError("MEDKIOSK_METRICS_TOKEN must be at least 16 characters")
        return value

    @field_validator("data_key")
    @classmethod
    def _data_key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except ValueError as exc:
            raise ValueError("MEDKIOSK_DATA_KEY must be base64") from exc
        if len(raw) != 32:
            raise ValueError("MEDKIOSK_DATA_KEY must decode to 32 bytes (AES-256)")
        return value

    @model_validator(mode="after")
    def _production_is_safe(self) -> "Settings":
        if self.session_warn_seconds >= self.session_idle_seconds:
            raise ValueError("MEDKIOSK_SESSION_WARN_SECONDS must be shorter than MEDKIOSK_SESSION_IDLE_SECONDS")
        if self.environment is Environment.PRODUCTION:
            if self.secret_key.get_secret_value() == DEFAULT_SECRET_KEY or len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("production refuses the default or a short MEDKIOSK_SECRET_KEY (≥ 32 characters)")
            if self.data_key.get_secret_value() == DEFAULT_DATA_KEY:
                raise ValueError("production refuses the default MEDKIOSK_DATA_KEY")
        return self

    @property
    def demo(self) -> bool:
        return self.environment is Environment.DEMO

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def registration_rules(self) -> RegistrationRules:
        return RegistrationRules(
            tz=self.tz,
            morning=HalfDayHours.parse(self.registration_morning_hours),
            afternoon=HalfDayHours.parse(self.registration_afternoon_hours),
            horizon_days=self.registration_horizon_days,
            pick_up_minutes_before=self.registration_pick_up_minutes_before,
            pick_up_days_before=self.registration_pick_up_days_before,
            registration_closes_minutes_before_end=self.registration_closes_minutes_before_end,
            cancel_minutes_before_start=self.registration_cancel_minutes_before_start,
            reprint_limit=self.registration_reprint_limit,
        )

    @property
    def data_key_bytes(self) -> bytes:
        return base64.b64decode(self.data_key.get_secret_value())


@lru_cache
def get_settings() -> Settings:
    return Settings()
