"""`/api/v1/exceptions`: request, read, approve, reject, revoke."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from mirror.api.reads import run_read
from mirror.auth.deps import PrincipalDep, ServiceDep
from mirror.exceptions.models import Decision, ErrorOut, ExceptionCreate, ExceptionOut
from mirror.exceptions.service import to_out

router = APIRouter(prefix="/api/v1/exceptions", tags=["exceptions"])
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.post("", status_code=201, response_model=ExceptionOut, responses=ERRORS,
             summary="Ask for a package that is not allowlisted (pre-checks run before this returns)")
def create_exception(body: ExceptionCreate, principal: PrincipalDep, service: ServiceDep) -> ExceptionOut:
    return to_out(service.create(principal, body))


@router.get("", response_model=list[ExceptionOut], responses=ERRORS, summary="Requests you may read, newest first")
async def list_exceptions(
    principal: PrincipalDep, service: ServiceDep,
    status: Literal["pending", "approved", "rejected", "revoked", "expired"] | None = None,
    project: Annotated[str | None, Query(max_length=100)] = None,
    ecosystem: Literal["pypi", "conda", "containers"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return Response(await run_read(service.list, principal, status, project, ecosystem, limit, offset), media_type="application/json")


@router.get("/{request_id}", response_model=ExceptionOut, responses=ERRORS)
async def get_exception(request_id: RequestId, principal: PrincipalDep, service: ServiceDep) -> ExceptionOut:
    return to_out(await run_read(service.get, principal, request_id))


@router.post("/{request_id}/approve", response_model=ExceptionOut, responses=ERRORS,
             summary="Approve (another person than the requester, with an approving role)",
             description="With `with_closure: true`, every dependency the request's `closure` pre-check lists is granted "
                         "too: one approved exception per package (`parent_id` names this request), each audited, all ending "
                         "and revoked together with it.")
def approve(request_id: RequestId, body: Decision, principal: PrincipalDep, service: ServiceDep) -> ExceptionOut:
    return to_out(service.decide(principal, request_id, True, body.comment, body.with_closure))


@router.post("/{request_id}/reject", response_model=ExceptionOut, responses=ERRORS)
def reject(request_id: RequestId, body: Decision, principal: PrincipalDep, service: ServiceDep) -> ExceptionOut:
    return to_out(service.decide(principal, request_id, False, body.comment))


@router.post("/{request_id}/revoke", response_model=ExceptionOut, responses=ERRORS,
             summary="Withdraw an approved exception at once")
def revoke(request_id: RequestId, body: Decision, principal: PrincipalDep, service: ServiceDep) -> ExceptionOut:
    return to_out(service.revoke(principal, request_id, body.comment))
