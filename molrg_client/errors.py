"""Exceptions carrying the API's RFC 9457 problem+json fields."""

from typing import Any

import httpx


class MolrgError(Exception):
    """An error response (or a failed job): ``status``, stable ``code``, ``detail``, field ``errors``."""

    def __init__(self, status: int, code: str, detail: str, errors: list[dict[str, Any]] | None = None,
                 title: str | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail
        self.errors = errors or []
        self.title = title

    def __str__(self) -> str:
        text = f"{self.code} ({self.status}): {self.detail}"
        for e in self.errors:
            text += f"\n  {e.get('field', '?')}: {e.get('reason', '')}"
        return text

    @classmethod
    def from_response(cls, response: httpx.Response) -> "MolrgError":
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(status=int(body.get("status", response.status_code)), code=str(body.get("code", "http_error")),
                   detail=str(body.get("detail", response.text[:500] or response.reason_phrase)),
                   errors=body.get("errors"), title=body.get("title"))


class MolrgTimeout(MolrgError):
    """``wait`` gave up before the job finished."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "timeout", detail)


class ConnectionFailed(MolrgError):
    """The API could not be reached."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "connection_error", detail)
