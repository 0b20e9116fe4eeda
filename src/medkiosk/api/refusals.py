"""How a kiosk use case's refusal, or a patient session that has ended, reaches the kiosk page."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException

from medkiosk.services.sessions import NoSession

T = TypeVar("T")

SESSION_ENDED = {"message": "操作超时，已退出，请重新识别身份", "next_step": "请重新插卡或扫码", "session_ended": True}


def refusal_guard(*refusals: type[Exception]) -> Callable[[Callable[[], T]], T]:
    """A guard for a kiosk route: each of ``refusals`` (with ``status``, ``message`` and ``next_step``)
    becomes ``{message, next_step}`` with its status; a session that ended, 401 ``session_ended``."""

    def guard(call: Callable[[], T]) -> T:
        try:
            return call()
        except refusals as exc:
            raise HTTPException(exc.status, {"message": exc.message, "next_step": exc.next_step}) from exc
        except NoSession as exc:
            raise HTTPException(401, dict(SESSION_ENDED)) from exc

    return guard
