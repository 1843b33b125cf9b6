"""Say how to fix a request whose body has the wrong shape for its route (read by the validation handler).

* A JSON route that got another content type (``curl -d`` sends ``application/x-www-form-urlencoded``):
  415 ``unsupported_media_type`` saying to send ``Content-Type: application/json``.
* A JSON route with no body: the ``body`` error says a JSON object is required, with that header.
* An upload without the multipart field ``file``: the ``file`` error says to send the array as the
  multipart/form-data field ``file`` (``curl -F file=@data.npy``), naming the fields that did arrive.

Functions over the request's headers and FastAPI's error list; no imports from service.errors.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError

JSON_HEADER = "Content-Type: application/json"
WHOLE_BODY_TYPES = frozenset({"model_attributes_type", "dict_type", "model_type", "json_type"})
UPLOAD_FIELD = "file"


@dataclass(frozen=True)
class Hint:
    status: int
    code: str
    detail: str
    errors: list[tuple[str, str]]


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    main = media_type(content_type)
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


def _got(content_type: str | None) -> str:
    return f"got Content-Type: {media_type(content_type)}" if media_type(content_type) else "got no Content-Type"


def reads_json_body(route: Any) -> bool | None:
    """Whether the matched route (``request.scope["route"]``) reads a JSON body; None when unknown."""
    body = getattr(route, "body_field", None)
    if route is None or not hasattr(route, "body_field"):
        return None
    return body is not None and type(body.field_info).__name__ == "Body"  # not Form/File (multipart)


def wrong_content_type(content_type: str | None, errors: Sequence[Mapping[str, Any]],
                       json_route: bool | None = None) -> Hint | None:
    """415 when a route that reads a JSON body got its body as another (declared) content type.

    ``json_route`` unknown: only when the whole body failed to parse as an object.
    """
    if is_json(content_type) or not media_type(content_type):
        return None
    body_errors = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)]
    if json_route is None:
        body_errors = [e for e in body_errors if tuple(e.get("loc", ())) == ("body",)
                       and e.get("type") in WHOLE_BODY_TYPES]
    elif not json_route:
        return None
    if not body_errors:
        return None
    how = (f"this endpoint reads a JSON object: send it with the header `{JSON_HEADER}` "
           f"(curl: -H '{JSON_HEADER}' -d '{{...}}', or --json '{{...}}'); {_got(content_type)}")
    return Hint(415, "unsupported_media_type", how, [("body", how)])


def better_reason(content_type: str | None, error: Mapping[str, Any], form_fields: Sequence[str] | None) -> str | None:
    """A reason that says how to fix a missing JSON body or a missing upload field, else None."""
    loc, kind = tuple(error.get("loc", ())), error.get("type")
    if kind != "missing":
        return None
    if loc == ("body",):
        return f"a JSON object body is required: send it with the header `{JSON_HEADER}`"
    if loc == ("body", UPLOAD_FIELD):
        got = f"got fields: {', '.join(sorted(form_fields))}" if form_fields else _got(content_type)
        return (f"send the array as the multipart/form-data field `{UPLOAD_FIELD}` "
                f"(curl -F {UPLOAD_FIELD}=@data.npy; .npy, CSV or JSON rows); {got}")
    return None


def form_field_names(body: Any) -> list[str] | None:
    """The field names of a parsed multipart/urlencoded body (FastAPI passes it on the validation error)."""
    keys = getattr(body, "keys", None)
    if keys is None:
        return None
    try:
        return [str(k) for k in dict.fromkeys(keys())]
    except Exception:
        return None


def with_better_reasons(exc: RequestValidationError, content_type: str | None) -> RequestValidationError:
    """The same errors, with the reasons of a missing JSON body or upload field saying how to fix them."""
    errors = list(exc.errors())
    fields = form_field_names(getattr(exc, "body", None))
    better = [better_reason(content_type, e, fields) for e in errors]
    if not any(better):
        return exc
    out = [{**e, "msg": b} if b else e for e, b in zip(errors, better, strict=True)]
    return RequestValidationError(out, body=getattr(exc, "body", None))
