"""The device agent's settings (prefix ``MEDKIOSK_AGENT_``), checked when the agent starts.

One agent runs per kiosk. Its identity is ``device_id`` plus the Ed25519 key in ``key_file``;
everything else says where the service is and which driver owns each peripheral.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medkiosk import __version__
from medkiosk.security.signing import DeviceSigner, private_key_from_pem


class ReaderDriver(StrEnum):
    SIMULATED = "simulated"
    """Fed by the demo panel's endpoints; nothing physical."""
    NONE = "none"
    """No vendor SDK wired in: the peripheral reports itself as not configured."""


class ReceiptPrinterDriver(StrEnum):
    SIMULATED = "simulated"
    """Renders real ESC/POS bytes into files under ``output_dir``."""
    ESCPOS = "escpos"
    """A real ESC/POS printer over USB, serial or the network (python-escpos)."""


class A4PrinterDriver(StrEnum):
    SIMULATED = "simulated"
    """Saves each PDF under ``output_dir``."""
    CUPS = "cups"
    """Hands the PDF to CUPS with ``lp``."""


class ReceiptPrinterConnection(StrEnum):
    USB = "usb"
    SERIAL = "serial"
    NETWORK = "network"


def _parse_int(value: object) -> object:
    """USB ids are usually written in hex (``0x0416``); accept that as well as decimal."""
    if isinstance(value, str) and value.strip():
        return int(value.strip(), 0)
    return value


class AgentSettings(BaseSettings):
    """Settings of one kiosk's device agent. See docs/agent.md for each one."""

    model_config = SettingsConfigDict(env_prefix="MEDKIOSK_AGENT_", env_file=None, extra="ignore")

    device_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    key_file: Path = Field(description="PEM file with this device's Ed25519 private key")
    service_url: str = "http://127.0.0.1:8000"

    # The local API: loopback only, because it has no authentication of its own.
    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=1, le=65535)

    demo: bool = Field(default=False, description="simulated drivers by default, and the demo panel endpoints")

    # Drivers per peripheral; unset means "simulated" in demo mode and the real one otherwise.
    insurance_card_reader_driver: ReaderDriver | None = None
    id_card_reader_driver: ReaderDriver | None = None
    qr_scanner_driver: ReaderDriver | None = None
    bank_pos_driver: ReaderDriver | None = None
    receipt_printer_driver: ReceiptPrinterDriver | None = None
    a4_printer_driver: A4PrinterDriver | None = None

    # The 80 mm receipt printer (ESC/POS).
    receipt_printer_connection: ReceiptPrinterConnection | None = None
    receipt_printer_usb_vendor: int | None = None
    receipt_printer_usb_product: int | None = None
    receipt_printer_serial_device: str = "/dev/ttyS0"
    receipt_printer_serial_baudrate: int = 9600
    receipt_printer_host: str | None = None
    receipt_printer_port: int = Field(default=9100, ge=1, le=65535)
    receipt_printer_profile: str | None = Field(default=None, description="python-escpos capabilities profile")
    receipt_printer_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    receipt_printer_chinese_mode: bool = Field(default=True, description="send FS & so the printer reads GB18030")
    receipt_printer_native_qr: bool = Field(default=True, description="GS ( k (printer draws the QR) vs a raster image")
    receipt_columns: int = Field(default=48, ge=16, le=80, description="characters per line in font A (80 mm: 48)")

    # The A4 printer (CUPS).
    a4_printer_name: str | None = Field(default=None, description="CUPS destination; unset = the CUPS default")
    lp_command: str = "lp"
    lpstat_command: str = "lpstat"

    output_dir: Path | None = Field(default=None, description="simulated printouts; default ./var/agent/<device_id>/")
    printed_keep: int = Field(default=20, ge=1, le=500, description="simulated printouts kept in memory")
    web_dir: Path | None = Field(default=None, description="the kiosk page; default the package's web/kiosk/")

    # The bank POS's daily settlement (批结算): the open batch is closed once a day at this hospital time.
    bank_pos_settle_at: str = Field(default="23:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                    description="HH:MM hospital time of the POS's daily settlement")
    timezone: str = Field(default="Asia/Shanghai", description="the hospital's local time")

    heartbeat_seconds: float = Field(default=5.0, gt=0, le=3600)
    software_version: str = __version__
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    long_poll_seconds: int = Field(default=25, ge=1, le=120)
    page_check_seconds: float = Field(default=30.0, gt=0, le=3600,
                                      description="how often an idle kiosk page asks whether a new release is in place")

    # Releases (docs/releases.md): installed beside the running version under releases_dir.
    releases_dir: Path | None = Field(default=None, description="default ./var/agent/<device_id>/releases/")
    release_public_keys: str = Field(default="", description="trusted release keys, base64, comma-separated; "
                                                             "empty = never install a release")
    release_check_seconds: float = Field(default=60.0, gt=0, le=86400)
    release_health_deadline_seconds: float = Field(default=120.0, gt=0, le=86400)

    # Log shipping (docs/logs.md).
    log_ship: bool = True
    log_ship_seconds: float = Field(default=10.0, gt=0, le=3600)
    log_ship_level: str = Field(default="info", pattern="^(debug|info|warning|error|critical)$")
    log_batch_lines: int = Field(default=200, ge=1, le=1000)
    log_buffer_lines: int = Field(default=5000, ge=100, le=1_000_000)

    @field_validator("receipt_printer_usb_vendor", "receipt_printer_usb_product", mode="before")
    @classmethod
    def _usb_ids_may_be_hex(cls, value: object) -> object:
        return _parse_int(value)

    @field_validator("release_public_keys")
    @classmethod
    def _release_keys_are_keys(cls, value: str) -> str:
        from medkiosk.security.release_signing import parse_key_list

        try:  # a typo in a key must stop the agent, not silently refuse every release
            parse_key_list(value)
        except ValueError as exc:
            raise ValueError(f"MEDKIOSK_AGENT_RELEASE_PUBLIC_KEYS: {exc}") from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"MEDKIOSK_AGENT_TIMEZONE: unknown time zone {value!r}") from exc
        return value

    @field_validator("service_url")
    @classmethod
    def _service_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("MEDKIOSK_AGENT_SERVICE_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("host")
    @classmethod
    def _host_is_loopback(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            loopback = ipaddress.ip_address(value).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError("MEDKIOSK_AGENT_HOST must be a loopback address: the local API has no authentication")
        return value

    @model_validator(mode="after")
    def _key_is_usable(self) -> "AgentSettings":
        self.signer()  # fail at start, not at the first card read
        return self

    def signer(self) -> DeviceSigner:
        try:
            pem = self.key_file.read_bytes()
        except OSError as exc:
            raise ValueError(f"MEDKIOSK_AGENT_KEY_FILE cannot be read: {self.key_file} ({exc.strerror})") from exc
        try:
            key = private_key_from_pem(pem)
        except ValueError as exc:
            raise ValueError(f"MEDKIOSK_AGENT_KEY_FILE is not an Ed25519 private key in PEM: {self.key_file}") from exc
        return DeviceSigner(self.device_id, key)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def printout_dir(self) -> Path:
        return self.output_dir if self.output_dir is not None else Path("var") / "agent" / self.device_id

    @property
    def release_root(self) -> Path:
        return self.releases_dir if self.releases_dir is not None else Path("var") / "agent" / self.device_id / "releases"

    def driver_for(self, kind: str) -> str:
        """The driver name for a peripheral kind, applying the demo/real default."""
        chosen = getattr(self, f"{kind}_driver")
        if chosen is not None:
            return str(chosen)
        if self.demo:
            return "simulated"
        return {"receipt_printer": "escpos", "a4_printer": "cups"}.get(kind, "none")
