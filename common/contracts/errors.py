"""One error vocabulary: a status, a stable code and a message, rendered as the public error envelope."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ServiceError(Exception):
    """An error meant for the client: carries its HTTP status, a stable code and a message."""

    status: int = 400
    code: str = "bad_request"
    default_message: str = "Bad Request"

    def __init__(
        self,
        message: str | list[str] | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status if status is not None else type(self).status
        self.code = code if code is not None else type(self).code
        self.message: str | list[str] = message if message is not None else self.default_message
        self.fields = fields
        self.headers = headers or {}
        super().__init__(self.message if isinstance(self.message, str) else "; ".join(self.message))

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "statusCode": self.status,
            "error": reason_phrase(self.status),
            "message": self.message,
            "code": self.code,
        }
        if self.fields:
            body["fields"] = self.fields
        return body

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ServiceError:
        status = int(body.get("statusCode", 500))
        err = ServiceError(
            body.get("message", reason_phrase(status)),
            status=status,
            code=str(body.get("code", "error")),
            fields=body.get("fields"),
            headers=body.get("headers"),
        )
        return err


class BadRequest(ServiceError):
    status, code, default_message = 400, "bad_request", "Bad Request"


class ValidationFailed(ServiceError):
    status, code, default_message = 400, "validation_failed", "Validation failed"


class Unauthorized(ServiceError):
    status, code, default_message = 401, "unauthorized", "Unauthorized"


class Forbidden(ServiceError):
    status, code, default_message = 403, "forbidden", "Forbidden resource"


class NotFound(ServiceError):
    status, code, default_message = 404, "not_found", "Not Found"


class Conflict(ServiceError):
    status, code, default_message = 409, "conflict", "Conflict"


class TooManyRequests(ServiceError):
    status, code, default_message = 429, "throttled", "Too many requests, try again later"


class InternalError(ServiceError):
    status, code, default_message = 500, "internal_error", "Internal server error"


class ServiceUnavailable(ServiceError):
    status, code, default_message = 503, "service_unavailable", "Service unavailable"


class GatewayTimeout(ServiceError):
    status, code, default_message = 504, "timeout", "The service did not answer in time"
