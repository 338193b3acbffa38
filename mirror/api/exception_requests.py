"""`/api/v1/exceptions`: request, read, approve, reject, revoke."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import TypeAdapter
from starlette.responses import Response

from mirror.api.models import Decision, ErrorOut, ExceptionCreate, ExceptionOut
from mirror.api.reads import run_read
from mirror.auth.deps import PrincipalDep
from mirror.exception_requests.store import request_payload
from mirror.exception_requests.workflow import ExceptionRequests, NewRequest

router = APIRouter(prefix="/api/v1/exceptions", tags=["exceptions"])
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ERRORS = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
_ONE = TypeAdapter(ExceptionOut)


def exception_requests(request: Request) -> ExceptionRequests:
    return request.app.state.parts.requests


RequestsDep = Annotated[ExceptionRequests, Depends(exception_requests)]


def request_out(row) -> ExceptionOut:
    return ExceptionOut.model_validate(request_payload(row))


def rendered(payload: dict) -> str:
    """One row of the list, validated against `ExceptionOut` and serialised as it would be."""
    return _ONE.dump_json(_ONE.validate_python(payload)).decode()


@router.post(
    "",
    status_code=201,
    response_model=ExceptionOut,
    responses=ERRORS,
    summary="Ask for a package that is not allowlisted (pre-checks run before this returns)",
)
def create_exception(body: ExceptionCreate, principal: PrincipalDep, requests: RequestsDep) -> ExceptionOut:
    new = NewRequest(
        body.ecosystem,
        body.package,
        body.versions,
        body.environments,
        body.project,
        body.justification,
        body.duration_days,
        tuple(sorted(set(body.waive))),
    )
    return request_out(requests.create(principal, new))


@router.get("", response_model=list[ExceptionOut], responses=ERRORS, summary="Requests you may read, newest first")
async def list_exceptions(
    principal: PrincipalDep,
    requests: RequestsDep,
    status: Literal["pending", "approved", "rejected", "revoked", "expired"] | None = None,
    project: Annotated[str | None, Query(max_length=100)] = None,
    ecosystem: Literal["pypi", "conda", "containers"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    # Each row is validated against ExceptionOut once (when it is first listed or has changed).
    body = await run_read(requests.list_json, principal, status, project, ecosystem, limit, offset, rendered)
    return Response(body, media_type="application/json")


@router.get("/{request_id}", response_model=ExceptionOut, responses=ERRORS)
async def get_exception(request_id: RequestId, principal: PrincipalDep, requests: RequestsDep) -> ExceptionOut:
    return request_out(await run_read(requests.get, principal, request_id))


@router.post(
    "/{request_id}/approve",
    response_model=ExceptionOut,
    responses=ERRORS,
    summary="Approve (another person than the requester, with an approving role)",
    description="With `with_closure: true`, every dependency the request's `closure` pre-check lists is granted "
    "too: one approved exception per package (`parent_id` names this request), each audited, all ending "
    "and revoked together with it.",
)
def approve(request_id: RequestId, body: Decision, principal: PrincipalDep, requests: RequestsDep) -> ExceptionOut:
    return request_out(requests.record_decision(principal, request_id, True, body.comment, body.with_closure))


@router.post("/{request_id}/reject", response_model=ExceptionOut, responses=ERRORS)
def reject(request_id: RequestId, body: Decision, principal: PrincipalDep, requests: RequestsDep) -> ExceptionOut:
    return request_out(requests.record_decision(principal, request_id, False, body.comment))


@router.post(
    "/{request_id}/revoke",
    response_model=ExceptionOut,
    responses=ERRORS,
    summary="Withdraw an approved exception at once",
)
def revoke(request_id: RequestId, body: Decision, principal: PrincipalDep, requests: RequestsDep) -> ExceptionOut:
    return request_out(requests.revoke(principal, request_id, body.comment))
