"""Text containing NUL never reaches a store or a query: a 422 naming the field instead.

PostgreSQL text cannot hold ``\\x00`` (the driver refuses the parameter, which used to surface as a 500),
and SQLite would store it where no client expects it. One check covers every route: query parameters,
the path, and every string (key or value) of a JSON body; multipart form fields are checked by the
upload route itself (:func:`service.errors.reject_nul`).
"""

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import MAX_LISTED_ERRORS, PROBLEM_JSON, PROBLEM_TYPE_BASE

NUL = "\x00"
REASON = "must not contain the NUL character (\\u0000)"


def _nul_fields(value: Any, path: str, found: list[str]) -> None:
    if len(found) >= MAX_LISTED_ERRORS:
        return
    if isinstance(value, str):
        if NUL in value:
            found.append(path or "body")
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if NUL in str(k):
                found.append(sub.replace(NUL, "\\u0000"))
            _nul_fields(v, sub, found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _nul_fields(v, f"{path}[{i}]", found)


def json_nul_fields(body: bytes) -> list[str]:
    """Dotted paths of the JSON body's strings that contain NUL ([] when none, or when it is not JSON)."""
    if b"\\u0000" not in body:  # the only way a NUL can be in valid JSON text
        return []
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return []  # not JSON: the route's own parsing answers it
    found: list[str] = []
    _nul_fields(value, "", found)
    return found


def query_nul_fields(query_string: bytes) -> list[str]:
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")
    return [f"query.{k}".replace(NUL, "\\u0000") for k, v in pairs if NUL in k or NUL in v]


class NulGuardMiddleware:
    """Answers 422 ``validation_error`` when a query parameter, the path or a JSON string holds NUL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = query_nul_fields(scope.get("query_string", b""))
        if NUL in scope.get("path", ""):
            fields.append("path")
        if fields:
            await _refuse(scope, send, fields)
            return
        ctype = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("method") not in ("POST", "PUT", "PATCH") or not (
                ctype == b"application/json" or ctype.endswith(b"+json")):
            await self.app(scope, receive, send)
            return
        # A JSON body is small (BodySizeLimitMiddleware caps it at max_json_bytes): read it, check, replay it.
        chunks: list[bytes] = []
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except HTTPException as exc:  # 413 from the body-size limit, raised while reading
            await _send_problem(scope, send, exc.status_code, "payload_too_large", str(exc.detail), None)
            return
        body = b"".join(chunks)
        if fields := json_nul_fields(body):
            await _refuse(scope, send, fields)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, send: Send, fields: list[str]) -> None:
    errors = [{"field": f, "reason": REASON} for f in fields[:MAX_LISTED_ERRORS]]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
    await _send_problem(scope, send, 422, "validation_error", detail, errors)


async def _send_problem(scope: Scope, send: Send, status: int, code: str, detail: str,
                        errors: list[dict[str, str]] | None) -> None:
    title = {413: "Content Too Large", 422: "Unprocessable Content"}.get(status, "Error")
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "detail": detail,
                            "instance": scope.get("path", "").replace(NUL, "\\u0000"), "code": code}
    if errors is not None:
        body["errors"], body["errors_total"] = errors, len(errors)
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
