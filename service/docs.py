"""Offline API docs: Swagger UI 5 from the installed ``fastapi-offline`` package (no CDN).

fastapi-offline ships a build of Swagger UI 5 (``swagger-ui-bundle.js``, CSS, favicon) as package data;
the page is FastAPI's own ``get_swagger_ui_html`` pointed at those files and at ``/openapi.json`` (OpenAPI
3.1, rendered as it is: Swagger UI 5 reads 3.1, so there is no second, down-converted schema).
"""

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = "/docs/static"
ASSETS = files("fastapi_offline") / "static"


def mount_docs(app: FastAPI) -> None:
    """Serve /docs with JS/CSS from the local package, so the page works without internet."""
    app.mount(STATIC, StaticFiles(directory=str(ASSETS)), name="swagger-ui-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - API docs",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js", swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon.png",
        )
