"""Errors of the local API: every one reaches the page as ``{"message", "next_step"}`` in Chinese."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from medkiosk.logging import get_logger

log = get_logger("medkiosk.agent.http")

NO_STORE = {"Cache-Control": "no-store"}

_BY_STATUS = {
    400: ("请求有误", "请返回重试"),
    403: ("不允许的操作", "请返回首页"),
    404: ("没有这个功能", "请返回首页"),
    405: ("不支持的操作", "请返回首页"),
    413: ("内容过大", "请到人工窗口办理"),
    415: ("内容格式不支持", "请到人工窗口办理"),
}


class AgentError(Exception):
    def __init__(self, status: int, message: str, next_step: str = "请到人工窗口办理", **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.next_step = next_step
        self.extra = extra


def error_body(message: str, next_step: str, **extra: object) -> dict:
    return {**extra, "message": message, "next_step": next_step}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgentError)
    async def _agent_error(request: Request, exc: AgentError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.next_step, **exc.extra), exc.status, headers=NO_STORE)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message, next_step = _BY_STATUS.get(exc.status_code, ("操作未能完成", "请返回首页"))
        return JSONResponse(error_body(message, next_step), exc.status_code, headers=NO_STORE)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in err.get("loc", ()) if p != "body") for err in exc.errors()]
        return JSONResponse(error_body("提交的内容有误", "请检查后重试", fields=fields), 422, headers=NO_STORE)

    @app.exception_handler(ValidationError)
    async def _invalid_model(request: Request, exc: ValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()]
        return JSONResponse(error_body("提交的内容有误", "请检查后重试", fields=fields), 422, headers=NO_STORE)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("local_api_crashed", path=request.url.path)
        return JSONResponse(error_body("系统繁忙，请稍后再试", "如多次出现，请到人工窗口办理"), 500, headers=NO_STORE)
