"""Offline API docs: Swagger UI assets served from the installed swagger_ui_bundle package (no CDN)."""

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

STATIC = "/docs/static"


def mount_docs(app: FastAPI) -> None:
    """Serve /docs with JS/CSS from the local package, so the page works without internet."""
    app.mount(STATIC, StaticFiles(directory=swagger_ui_path), name="swagger-ui-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )
