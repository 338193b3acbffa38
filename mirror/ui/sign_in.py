"""Sign in with an API token (exchanged for a session cookie), sign out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from mirror.audit.log import append
from mirror.parts import ServiceParts
from mirror.ui.context import REFUSALS, ViewerDep, page, refusal_page
from mirror.ui.sessions import COOKIE, PRE_SIGN_IN_COOKIE, same

router = APIRouter(prefix="/ui", include_in_schema=False)


def _cookie(response: Response, request: Request, name: str, value: str, path: str = "/ui") -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=request.url.scheme == "https", path=path)


@router.get("/sign-in")
async def sign_in_form(request: Request, why: str = "") -> Response:
    csrf = secrets.token_urlsafe(24)
    response = page(request, "sign_in.html", None, csrf=csrf, why=why[:200])
    _cookie(response, request, PRE_SIGN_IN_COOKIE, csrf)
    return response


@router.post("/sign-in")
async def sign_in(
    request: Request, token: Annotated[str, Form(max_length=200)], csrf: Annotated[str, Form(max_length=100)]
) -> Response:
    parts: ServiceParts = request.app.state.parts
    if not same(csrf, request.cookies.get(PRE_SIGN_IN_COOKIE, "")):
        return page(request, "sign_in.html", None, status=403, why="the form expired: sign in again", csrf="")
    source = request.client.host if request.client else "?"
    try:
        principal = await run_in_threadpool(
            parts.access.authenticate, token.strip(), "POST /ui/sign-in", "/ui/sign-in", source
        )
    except REFUSALS as exc:
        fresh = secrets.token_urlsafe(24)
        response = page(request, "sign_in.html", None, status=401, why=getattr(exc, "reason", str(exc)), csrf=fresh)
        _cookie(response, request, PRE_SIGN_IN_COOKIE, fresh)
        return response
    session_id, _ = parts.ui_sessions.create(token.strip(), principal.user)

    def audited() -> None:
        with parts.database.transaction() as session:
            append(session, principal.user, "ui.signed_in", f"token {principal.token_id}", {"role": principal.role})

    await run_in_threadpool(audited)
    response = RedirectResponse("/ui/", status_code=303)
    _cookie(response, request, COOKIE, session_id)
    response.delete_cookie(PRE_SIGN_IN_COOKIE, path="/ui")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, viewer: ViewerDep, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    try:
        viewer.check_csrf(csrf)
    except REFUSALS as exc:
        return refusal_page(request, viewer, exc)
    viewer.parts.ui_sessions.end(request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/sign-in?why=signed out", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
