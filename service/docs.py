"""Offline API docs: Swagger UI assets served from the installed swagger_ui_bundle package (no CDN).

swagger_ui_bundle ships Swagger UI 4.x, which renders OpenAPI 3.0 but not 3.1 (FastAPI's output), so
the page loads ``/docs/openapi.json``: the same schema expressed in OpenAPI 3.0 (nullable instead of
``type: null``, ``example`` instead of ``examples``). ``/openapi.json`` stays the 3.1 source of truth.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

STATIC = "/docs/static"
DOCS_SCHEMA = "/docs/openapi.json"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" type="text/css" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script src="{static}/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{schema}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: "StandaloneLayout",
    }});
  </script>
</body>
</html>
"""


def to_openapi_30(node: Any) -> Any:
    """Rewrite the 3.1-only constructs FastAPI emits into their OpenAPI 3.0 equivalents."""
    if isinstance(node, list):
        return [to_openapi_30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_openapi_30(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            out.pop(key)
            if len(rest) == 1:
                out = {**rest[0], **out} if "$ref" not in rest[0] else {"allOf": rest, **out}
            else:
                out[key] = rest
            out["nullable"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):  # a 3.1 schema keyword; 3.0 has a single example
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    return out


def mount_docs(app: FastAPI) -> None:
    """Serve /docs with JS/CSS from the local package, so the page works without internet."""
    app.mount(STATIC, StaticFiles(directory=swagger_ui_path), name="swagger-ui-static")
    cache: dict[str, Any] = {}

    @app.get(DOCS_SCHEMA, include_in_schema=False)
    def docs_schema() -> JSONResponse:
        if "schema" not in cache:
            schema = to_openapi_30(app.openapi())
            schema["openapi"] = "3.0.3"
            cache["schema"] = schema
        return JSONResponse(cache["schema"])

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(PAGE.format(title=f"{app.title} - API docs", static=STATIC, schema=DOCS_SCHEMA))
