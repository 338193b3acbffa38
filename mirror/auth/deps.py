"""FastAPI dependencies: the caller's principal from `Authorization: Bearer alk_…`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from mirror.auth.roles import Principal
from mirror.exceptions.service import ExceptionService


async def service(request: Request) -> ExceptionService:
    return request.app.state.exceptions


async def current_principal(request: Request) -> Principal:
    """Async: a token seen in the last seconds is answered from memory without a thread hop."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    cached = request.app.state.token_cache.cached(token) if token else None
    if cached is not None:
        return cached
    return await run_in_threadpool(_authenticate, request, token)


def _authenticate(request: Request, token: str) -> Principal:
    exceptions: ExceptionService = request.app.state.exceptions
    attempt = f"{request.method} {request.url.path}"
    if not token:
        raise exceptions.deny(None, attempt, request.url.path,
                              "a bearer token is required: Authorization: Bearer alk_… (create one with `airlock token create`)", status=401)
    principal, why = request.app.state.token_cache.lookup(token, exceptions.db)
    if principal is None:
        raise exceptions.deny(None, attempt, request.url.path, f"invalid token: {why}", status=401)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
ServiceDep = Annotated[ExceptionService, Depends(service)]
