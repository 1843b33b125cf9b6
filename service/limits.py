"""Request body size limits, enforced before the body is parsed (413 problem+json)."""

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATH_SUFFIX = "/upload"


class BodySizeLimitMiddleware:
    """Uploads may be up to ``max_upload_bytes``; any other body up to ``max_json_bytes``."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        is_upload = scope["path"].endswith(UPLOAD_PATH_SUFFIX)
        # Multipart framing adds a little on top of the file itself.
        limit = self.max_upload_bytes + 64 * 1024 if is_upload else self.max_json_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises HTTPExceptions raised while reading the body.
                    raise HTTPException(413, f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    body = json.dumps({
        "type": "urn:molrg:problem:payload_too_large", "title": "Content Too Large", "status": 413,
        "detail": f"request body exceeds {limit} bytes", "instance": scope["path"], "code": "payload_too_large",
    }).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
