"""What the exception workflow refuses, as precise types (the API maps them to HTTP statuses)."""

from __future__ import annotations


class RequestError(Exception):
    """Base of the workflow's refusals; the message says what to do."""


class RequestNotFound(RequestError):
    """No such exception request."""


class RequestConflict(RequestError):
    """The request's state forbids it: already decided, already allowed, closure not grantable."""


class InvalidRequest(RequestError):
    """A request body value that cannot be honoured; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
