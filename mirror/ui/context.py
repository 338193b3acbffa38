"""What every page shares: the signed-in principal (from the session cookie), the templates, the
refusal page, and the security headers of every `/ui/` answer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mirror.auth.access import AccessDenied
from mirror.auth.roles import Permission, Principal
from mirror.exception_requests.errors import InvalidRequest, RequestConflict, RequestNotFound
from mirror.parts import ServiceParts
from mirror.ui.sessions import COOKIE, UiSession, same

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SECURITY_HEADERS = {
    # No inline script or style anywhere: the pages work without JavaScript.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class UiHeaders:
    """Adds the security headers to every answer under `/ui/`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/ui"):
            return await self.app(scope, receive, send)

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message.setdefault("headers", []).extend(
                    (k.lower().encode(), v.encode())
                    for k, v in SECURITY_HEADERS.items()
                    if k.lower().encode() not in names
                )
            await send(message)

        await self.app(scope, receive, with_headers)


class SignInRequired(Exception):
    """No session, or its token no longer works: the sign-in page, saying why."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Viewer:
    """The signed-in person: principal, session (CSRF token) and the parts pages use."""

    def __init__(self, principal: Principal, session: UiSession, parts: ServiceParts) -> None:
        self.principal, self.session, self.parts = principal, session, parts

    @property
    def may_decide(self) -> bool:
        return self.principal.scope(Permission.DECIDE) is not None

    @property
    def may_audit(self) -> bool:
        return self.principal.scope(Permission.READ_AUDIT) is not None

    @property
    def may_request(self) -> bool:
        return self.principal.scope(Permission.REQUEST) is not None

    def check_csrf(self, given: str | None) -> None:
        if not same(given, self.session.csrf):
            raise AccessDenied(
                403, "the form's security token is missing or stale: reload the page and submit it again"
            )


async def current_viewer(request: Request) -> Viewer:
    parts: ServiceParts = request.app.state.parts
    session = parts.ui_sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    principal = parts.access.cached(session.token)
    if principal is None:
        principal, why = await run_in_threadpool(parts.access.lookup, session.token)
        if principal is None:
            parts.ui_sessions.end(request.cookies.get(COOKIE))
            raise SignInRequired(f"your session ended: {why}")
    return Viewer(principal, session, parts)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def page(request: Request, template: str, viewer: Viewer | None, status: int = 200, **values: Any) -> Response:
    return TEMPLATES.TemplateResponse(
        request, template, {"viewer": viewer, "now": datetime.now(UTC), **values}, status_code=status
    )


def refusal_page(request: Request, viewer: Viewer | None, exc: Exception) -> Response:
    """The service's refusals, as a page with the same sentence the API gives."""
    if isinstance(exc, AccessDenied):
        status, message = exc.status, exc.reason
    elif isinstance(exc, RequestNotFound):
        status, message = 404, str(exc)
    elif isinstance(exc, RequestConflict):
        status, message = 409, str(exc)
    elif isinstance(exc, InvalidRequest):
        status, message = 422, f"{exc.field}: {exc}"
    else:
        raise exc
    return page(request, "refused.html", viewer, status=status, message=message)


REFUSALS = (AccessDenied, RequestNotFound, RequestConflict, InvalidRequest)


def to_sign_in(reason: str = "") -> Response:
    target = "/ui/sign-in" + (f"?why={reason[:200]}" if reason else "")
    return RedirectResponse(target, status_code=303)


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def absolute(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def plain_reason(reason: str) -> str:
    """A decision's reason without the API recipe for asking (the page has its own button)."""
    return reason.split("; to ask for it, request an exception:", 1)[0]


TEMPLATES.env.filters["ago"] = ago
TEMPLATES.env.filters["plain_reason"] = plain_reason
TEMPLATES.env.filters["absolute"] = absolute
