"""Staff pages and JSON for the daily reconciliation: runs, their discrepancies, resolving one.

Finance and auditors see the runs (``view_reconciliation``); finance marks a discrepancy resolved
with a note (``resolve_discrepancies``), which is audited. Roles, sessions and CSRF are those of
api/staff.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from medkiosk.api.staff import _client, _container, _PageRoute, require, templates
from medkiosk.bootstrap import Container
from medkiosk.services.reconciliation import ReconciliationError, ReconciliationService
from medkiosk.services.staff import Permission, StaffPrincipal

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Viewer = Annotated[StaffPrincipal, Depends(require(Permission.VIEW_RECONCILIATION))]
Resolver = Annotated[StaffPrincipal, Depends(require(Permission.RESOLVE_DISCREPANCIES))]


def reconciliation_service(container: Annotated[Container, Depends(_container)]) -> ReconciliationService:
    return ReconciliationService.from_container(container)


Service = Annotated[ReconciliationService, Depends(reconciliation_service)]


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, {"message": f"没有找到该{what}", "next_step": "请返回对账列表"})


# --- pages ---------------------------------------------------------------------------------------------
pages = APIRouter(prefix="/staff/reconciliation", route_class=_PageRoute, include_in_schema=False)


@pages.get("")
def runs_page(request: Request, staff: Viewer, service: Service) -> Response:
    return templates.TemplateResponse(request, "staff/reconciliation.html", {"staff": staff, "runs": service.runs()})


def _run_page(request: Request, staff: StaffPrincipal, service: ReconciliationService, run_id: int, *,
              open_only: bool = False, resolved: int | None = None, error: str = "", error_id: int | None = None,
              status_code: int = 200) -> Response:
    found = service.run_detail(run_id, open_only=open_only)
    if found is None:
        raise _not_found("对账记录")
    run, discrepancies = found
    return templates.TemplateResponse(request, "staff/reconciliation_run.html", {
        "staff": staff, "run": run, "discrepancies": discrepancies, "open_only": open_only, "resolved": resolved,
        "error": error, "error_id": error_id}, status_code=status_code)


@pages.get("/{run_id}")
def run_page(request: Request, run_id: Id, staff: Viewer, service: Service, open: bool = False,
             resolved: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    return _run_page(request, staff, service, run_id, open_only=open, resolved=resolved)


@pages.post("/discrepancies/{discrepancy_id}/resolve")
def resolve(request: Request, discrepancy_id: Id, staff: Resolver, service: Service,
            run_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
            note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    try:
        view = service.resolve(staff.username, discrepancy_id, note, client=_client(request))
    except LookupError as exc:
        raise _not_found("差异") from exc
    except ReconciliationError as exc:
        return _run_page(request, staff, service, run_id, error=str(exc), error_id=discrepancy_id, status_code=400)
    return RedirectResponse(f"/staff/reconciliation/{view.run_id}?resolved={discrepancy_id}#d{discrepancy_id}",
                            status_code=303)


# --- JSON ------------------------------------------------------------------------------------------------
api = APIRouter(prefix="/api/staff/reconciliation", tags=["reconciliation"])


@api.get("/runs")
def runs(_staff: Viewer, service: Service, limit: Annotated[int, Query(ge=1, le=366)] = 60) -> dict[str, Any]:
    """Latest runs, newest day first, with how many of their discrepancies are still open."""
    return {"runs": [run.to_json() for run in service.runs(limit=limit)]}


@api.get("/runs/{run_id}")
def run(run_id: Id, _staff: Viewer, service: Service, open: bool = False) -> dict[str, Any]:
    """One run and its discrepancies (``open=1``: only those not yet resolved)."""
    found = service.run_detail(run_id, open_only=open)
    if found is None:
        raise _not_found("对账记录")
    view, discrepancies = found
    return {"run": view.to_json(), "discrepancies": [d.to_json() for d in discrepancies]}


@api.post("/discrepancies/{discrepancy_id}/resolve")
def resolve_json(request: Request, discrepancy_id: Id, staff: Resolver, service: Service,
                 body: dict[str, str]) -> JSONResponse:
    """Mark a discrepancy resolved: ``{"note": "…"}`` (send the ``X-CSRF-Token`` header)."""
    try:
        view = service.resolve(staff.username, discrepancy_id, body.get("note", ""), client=_client(request))
    except LookupError as exc:
        raise _not_found("差异") from exc
    except ReconciliationError as exc:
        raise HTTPException(409, {"message": str(exc)}) from exc
    return JSONResponse({"discrepancy": view.to_json()})


router = APIRouter()
router.include_router(pages)
router.include_router(api)
