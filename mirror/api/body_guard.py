"""API request bodies: the caller is authenticated before a byte of the body is read, and the body
is refused (413) as soon as it passes the caller's limit.

Every `/api/v1` route that takes a body needs a token, so a body from a caller without a valid
one is never worth reading: it is answered 401 at once. The large limit (a gate decision carries
every finding of an image: megabytes) applies only to a principal that may post gate decisions;
everyone else gets the small one.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mirror.auth.access import AccessControl, AccessDenied, presented_token
from mirror.auth.roles import Permission

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(Exception):
    """The body grew past the limit while it was read."""


class ApiBodyGuard:
    def __init__(
        self, app: ASGIApp, access: AccessControl, limit: int, large_limit: int, large_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.access = access
        self.limit = limit
        self.large_limit = large_limit
        self.large_paths = large_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/") or not _has_body(scope):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        token = presented_token(authorization) if authorization.lower().startswith("bearer") else None
        path = scope["path"]
        try:
            principal = self.access.cached(token) if token else None
            if principal is None:
                source = (scope.get("client") or ("?",))[0]
                principal = await run_in_threadpool(
                    self.access.authenticate, token, f"{scope['method']} {path}", path, source
                )
        except AccessDenied as exc:
            return await denied_response(exc)(scope, receive, send)
        large = path.rstrip("/") in self.large_paths and principal.may(Permission.POST_GATE)
        limit = self.large_limit if large else self.limit
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await too_large(limit)(scope, receive, send)
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _has_body(scope: Scope) -> bool:
    if scope["method"] not in _BODY_METHODS:
        return False
    headers = dict(scope["headers"])
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


def too_large(limit: int) -> Response:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def denied_response(exc: AccessDenied) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=headers)
