"""The insurance simulator's memory: people, e-certificate tokens and sign-ins, behind one lock.

It implements the ``SimulatorState`` protocol of :mod:`medkiosk.simulators.control`, so the shared
control surface can show, load, add and reset its collections. Its clock can be moved forward
(tokens and sign-ins expire by it) so tests and training need not wait.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, TypeAdapter

from medkiosk.simulators.insurance.data import PersonRecord, SigninRecord, TokenRecord, persona_people

CHINA_TZ = timezone(timedelta(hours=8), "CST")

DEFAULT_TOKEN_TTL_SECONDS = 600
DEFAULT_SIGNIN_TTL_SECONDS = 12 * 3600

_RECORDS: dict[str, type[BaseModel]] = {"people": PersonRecord, "tokens": TokenRecord, "signins": SigninRecord}


class InsuranceState:
    """People the platform knows, tokens it issued and sign-ins it accepts."""

    collections = tuple(_RECORDS)

    def __init__(self, people: Iterable[PersonRecord] | None = None, *, seed: int | None = None,
                 token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
                 signin_ttl_seconds: int = DEFAULT_SIGNIN_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._initial = [p.model_copy(deep=True) for p in (persona_people() if people is None else people)]
        self._seed = seed
        self.token_ttl_seconds = token_ttl_seconds
        self.signin_ttl_seconds = signin_ttl_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._refmsg_seq = itertools.count(1)
        self.reset()

    # -- clock ------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def now_local(self) -> datetime:
        return datetime.fromtimestamp(self.now(), CHINA_TZ)

    def today(self) -> date:
        return self.now_local().date()

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (tokens and sign-ins age with it)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    @property
    def clock_offset(self) -> float:
        return self._offset

    # -- SimulatorState ---------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._people: dict[str, PersonRecord] = {p.psn_no: p.model_copy(deep=True) for p in self._initial}
            self._tokens: dict[str, TokenRecord] = {}
            self._signins: dict[str, SigninRecord] = {}
            self._offset = 0.0
            self._random = random.Random(self._seed)
            self._reindex()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "people": [p.model_dump(mode="json") for p in self._people.values()],
                "tokens": [t.model_dump(mode="json") for t in self._tokens.values()],
                "signins": [s.model_dump(mode="json") for s in self._signins.values()],
            }

    def load(self, data: dict[str, Any]) -> None:
        """Replace the named collections (others stay); all are checked before any is replaced."""
        parsed = {name: self._parse(name, items) for name, items in data.items()}
        with self._lock:
            people = self._people
            if "people" in parsed:
                people = {}
                for person in parsed["people"]:
                    if person.psn_no in people:
                        raise ValueError(f"psn_no {person.psn_no} appears twice")
                    people[person.psn_no] = person
                _check_unique(people)
            self._people = people
            if "tokens" in parsed:
                self._tokens = {t.ec_token: t for t in parsed["tokens"]}
            if "signins" in parsed:
                self._signins = {s.sign_no: s for s in parsed["signins"]}
            self._reindex()

    def add(self, collection: str, items: list[dict[str, Any]]) -> int:
        """Add (or replace, by key) records; one bad item refuses them all and changes nothing."""
        records = self._parse(collection, items)
        with self._lock:
            if collection == "people":
                people = dict(self._people)
                seen: set[str] = set()
                for person in records:
                    if person.psn_no in seen:
                        raise ValueError(f"psn_no {person.psn_no} appears twice")
                    seen.add(person.psn_no)
                    people[person.psn_no] = person
                _check_unique(people)
                self._people = people
                self._reindex()
            elif collection == "tokens":
                self._tokens.update({t.ec_token: t for t in records})
            else:
                self._signins.update({s.sign_no: s for s in records})
        return len(records)

    @staticmethod
    def _parse(collection: str, items: Any) -> list[Any]:
        if collection not in _RECORDS:
            raise KeyError(f"no collection {collection!r}; have {sorted(_RECORDS)}")
        if not isinstance(items, list):
            raise TypeError(f"{collection} takes a list of records")
        return TypeAdapter(list[_RECORDS[collection]]).validate_python(items)

    def _reindex(self) -> None:
        people = self._people.values()
        self._by_id_number = {p.id_number: p for p in people}
        self._by_card_no = {p.card_no: p for p in people if p.card_no}
        self._by_ec_qr = {p.ec_qr: p for p in people if p.ec_qr}

    # -- people -----------------------------------------------------------------------------
    def person(self, psn_no: str) -> PersonRecord | None:
        with self._lock:
            return self._people.get(psn_no)

    def person_by_id_number(self, id_number: str) -> PersonRecord | None:
        with self._lock:
            return self._by_id_number.get(id_number.strip().upper())

    def person_by_card_no(self, card_no: str) -> PersonRecord | None:
        with self._lock:
            return self._by_card_no.get(card_no.strip())

    def person_by_ec_qr(self, qrcode: str) -> PersonRecord | None:
        with self._lock:
            return self._by_ec_qr.get(qrcode.strip())

    # -- e-certificate tokens ---------------------------------------------------------------
    def issue_token(self, person: PersonRecord, org_id: str) -> TokenRecord:
        with self._lock:
            now = self.now()
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            token = TokenRecord(ec_token=f"ect{self._random.getrandbits(128):032x}", psn_no=person.psn_no,
                                org_id=org_id, issued_at=now, expires_at=now + self.token_ttl_seconds)
            self._tokens[token.ec_token] = token
            return token

    def token(self, ec_token: str) -> TokenRecord | None:
        with self._lock:
            return self._tokens.get(ec_token)

    # -- sign-ins ---------------------------------------------------------------------------
    def sign_in(self, fixmedins_code: str, *, opter_no: str, mac: str, ip: str) -> SigninRecord:
        with self._lock:
            now = self.now_local()
            record = SigninRecord(
                sign_no=f"{now:%Y%m%d%H%M%S}{self._random.randrange(10**16):016d}",
                fixmedins_code=fixmedins_code, opter_no=opter_no, mac=mac, ip=ip,
                sign_time=f"{now:%Y-%m-%d %H:%M:%S}", expires_at=self.now() + self.signin_ttl_seconds,
            )
            self._signins[record.sign_no] = record
            return record

    def signed_in(self, sign_no: str, fixmedins_code: str) -> bool:
        with self._lock:
            record = self._signins.get(sign_no)
            return bool(record and record.fixmedins_code == fixmedins_code and record.expires_at > self.now())

    def forget_signins(self) -> None:
        """Drop every sign-in, as the platform does overnight: clients must sign in again."""
        with self._lock:
            self._signins.clear()

    # -- reply ids --------------------------------------------------------------------------
    def next_refmsgid(self, admdvs: str) -> str:
        """The platform's own id for a reply: region, time to the millisecond, a sequence (30 chars)."""
        now = self.now_local()
        return f"{admdvs or '000000'}{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}{next(self._refmsg_seq) % 10**7:07d}"


def _check_unique(people: dict[str, PersonRecord]) -> None:
    for attribute in ("id_number", "card_no", "ec_qr"):
        owners: dict[str, str] = {}
        for person in people.values():
            value = getattr(person, attribute)
            if not value:
                continue
            if value in owners:
                raise ValueError(f"{attribute} of psn_no {person.psn_no} is already used by psn_no {owners[value]}")
            owners[value] = person.psn_no
