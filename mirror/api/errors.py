"""HTTP errors of `/api/v1`: the refusals routes raise and the domain's errors mapped to statuses.
Domain modules raise their own types; only this module knows HTTP for them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from mirror.api.body_guard import BodyTooLarge, denied_response
from mirror.auth.access import AccessDenied
from mirror.exception_requests.errors import InvalidRequest, RequestConflict, RequestNotFound
from mirror.refusals import refusal


class ApiError(Exception):
    """A refusal a route raises itself (404 for an unknown token, 422 for a field)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def field_error(field: str, message: str) -> ApiError:
    return ApiError(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def install(app: FastAPI) -> None:
    """The handlers that turn errors into the API's JSON answers (and refusals elsewhere)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(AccessDenied)
    async def access_denied(request: Request, exc: AccessDenied) -> Response:
        return denied_response(exc)

    @app.exception_handler(RequestNotFound)
    async def not_found(request: Request, exc: RequestNotFound) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(RequestConflict)
    async def conflict(request: Request, exc: RequestConflict) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidRequest)
    async def invalid(request: Request, exc: InvalidRequest) -> Response:
        return JSONResponse(
            {"detail": [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]}, status_code=422
        )

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> Response:
        return too_large(exc.args[0])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not request.url.path.startswith("/api/"):
            return refusal(404, f"no such route: {request.url.path} (pip/uv: /pypi/ENV/simple/)", route="unknown")
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(problems)}, status_code=422)
