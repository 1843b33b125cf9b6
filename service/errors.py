"""Domain errors (no HTTP in them) and the handlers that render RFC 9457 problem+json."""

import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from molrg.spec import FIT_OPTIONS, METHODS

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:molrg:problem:"
# A problem body lists at most this many field errors, plus their total: a small request with a long
# invalid list must not turn into a body thousands of times its size.
MAX_LISTED_ERRORS = 20


@dataclass
class FieldError:
    """One invalid field: a dotted path (``synthetic.dims``) and why it is invalid."""

    field: str
    reason: str


def summarize(errors: list[FieldError]) -> str:
    """``field: reason; ...`` of the first :data:`MAX_LISTED_ERRORS` errors, and how many more there are."""
    text = "; ".join(f"{e.field}: {e.reason}" for e in errors[:MAX_LISTED_ERRORS])
    if len(errors) > MAX_LISTED_ERRORS:
        text += f"; and {len(errors) - MAX_LISTED_ERRORS} more errors"
    return text


class ServiceError(Exception):
    """Base of the domain errors; ``code`` is the stable machine-readable name."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    code = "not_found"

    def __init__(self, resource: str, ident: object) -> None:
        super().__init__(f"{resource} {ident} not found")
        self.resource = resource


class InvalidJobState(ServiceError):
    code = "invalid_job_state"


class IdempotencyKeyReused(ServiceError):
    code = "idempotency_key_reused"


class IdempotencyKeyInProgress(ServiceError):
    code = "idempotency_key_in_progress"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class Unauthorized(ServiceError):
    code = "unauthorized"


class Forbidden(ServiceError):
    code = "forbidden"


class ServiceUnavailable(ServiceError):
    code = "service_unavailable"


class ValidationFailed(ServiceError):
    """Semantic validation failed (after pydantic parsing): one or more fields are invalid."""

    code = "validation_error"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__(summarize(errors))

    @classmethod
    def one(cls, field_name: str, reason: str) -> Self:
        return cls([FieldError(field_name, reason)])


class InvalidUpload(ValidationFailed):
    code = "invalid_upload"


_STATUS: dict[type[ServiceError], int] = {
    NotFound: 404,
    InvalidJobState: 409,
    IdempotencyKeyInProgress: 409,
    IdempotencyKeyReused: 422,
    ValidationFailed: 422,
    PayloadTooLarge: 413,
    Unauthorized: 401,
    Forbidden: 403,
    ServiceUnavailable: 503,
}


def status_of(exc: ServiceError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An ``application/problem+json`` response (RFC 9457) with a stable ``code``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "reason": e.reason} for e in errors[:MAX_LISTED_ERRORS]]
        body["errors_total"] = len(errors)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any], error_type: str = "") -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    if parts and parts[0] in METHODS:
        parts = parts[1:]  # the tag of a per-method fit variant (molrg.spec.FitSpec), not a field
    if error_type == "invalid_method":
        parts = [*parts, "method"]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or str(loc[0] if loc else "body")


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    status = status_of(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="molrg"'} if status == 401 else None
    errors = exc.errors if isinstance(exc, ValidationFailed) else None
    return problem(request, status, exc.code, exc.detail, errors, headers)


def _reason(error: Any) -> str:
    """Pydantic's message, or for an unknown option the options the method knows (molrg.spec)."""
    loc = [p for p in error.get("loc", ()) if isinstance(p, str)]
    if error.get("type") == "extra_forbidden" and "options" in "".join(loc[:-1]):
        method = next((p for p in loc if p in FIT_OPTIONS), None)
        if method is not None:
            known = ", ".join(FIT_OPTIONS[method].model_fields) or "none"
            return f"unknown option for method {method} (known: {known})"
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return str(error.get("msg", "invalid"))


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldError(_loc_to_field(e.get("loc", ()), str(e.get("type", ""))), _reason(e)) for e in exc.errors()]
    detail = summarize(errors) or "invalid request"
    return problem(request, 422, "validation_error", detail, errors)


async def _request_validation_with_hints(request: Request, exc: Exception) -> JSONResponse:
    """415 for a JSON route sent another content type; reasons that say how to fix a missing body or file."""
    from service import request_hints

    assert isinstance(exc, RequestValidationError)
    content_type = request.headers.get("content-type")
    json_route = request_hints.reads_json_body(request.scope.get("route"))
    if (hint := request_hints.wrong_content_type(content_type, exc.errors(), json_route)) is not None:
        return problem(request, hint.status, hint.code, hint.detail, [FieldError(f, r) for f, r in hint.errors])
    return await _request_validation(request, request_hints.with_better_reasons(exc, content_type))


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
            413: "payload_too_large"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    return problem(request, exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) and not exc.connection_invalidated:
        return await _unhandled(request, exc)
    log.warning("database unavailable: %s", exc.__class__.__name__)
    return problem(request, 503, "database_unavailable", "the database is unreachable; retry later",
                   headers={"Retry-After": "5"})


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal_error", "internal server error")


def reject_nul(fields: dict[str, str | None]) -> None:
    """422 naming each field whose text holds NUL (form fields; JSON and query text: service.nul_guard)."""
    bad = [FieldError(name, "must not contain the NUL character (\\u0000)")
           for name, value in fields.items() if value is not None and "\x00" in value]
    if bad:
        raise ValidationFailed(bad)


def register_exception_handlers(app: FastAPI) -> None:
    """Map every error to one problem+json shape; text holding NUL is answered 422 before any route."""
    from service.nul_guard import NulGuardMiddleware

    app.add_middleware(NulGuardMiddleware)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation_with_hints)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    app.add_exception_handler(Exception, _unhandled)
