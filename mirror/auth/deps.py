"""FastAPI dependencies: the caller's principal (from `Authorization: Bearer alk_…`) and the
access control that checks it — the same `AccessControl` the package routes use."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from mirror.auth.access import AccessControl, presented_token
from mirror.auth.roles import Principal


def access_control(request: Request) -> AccessControl:
    return request.app.state.parts.access


async def current_principal(request: Request) -> Principal:
    """Async: a token seen in the last seconds is answered from memory without a thread hop."""
    authorization = request.headers.get("authorization", "")
    token = presented_token(authorization) if authorization.lower().startswith("bearer") else None
    access: AccessControl = request.app.state.parts.access
    cached = access.cached(token) if token else None
    if cached is not None:
        return cached
    source = request.client.host if request.client else "?"
    return await run_in_threadpool(
        access.authenticate, token, f"{request.method} {request.url.path}", request.url.path, source
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]
AccessDep = Annotated[AccessControl, Depends(access_control)]
