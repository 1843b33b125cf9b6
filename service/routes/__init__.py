"""HTTP routes: ``api_router`` (prefix /api/v1, bearer auth) plus the public health and metrics routers."""

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from service import request_hints
from service.schemas import Problem

Responses = dict[int | str, dict[str, Any]]  # FastAPI's ``responses=`` of a route


def problems(*codes: int) -> Responses:
    """OpenAPI entries for problem+json error responses."""
    text = {400: "Malformed request body (not parseable as the declared content type)",
            401: "Missing, invalid or revoked API key", 403: "Forbidden: needs an admin key", 404: "Not found (or owned by someone else)",
            409: "Conflict with the resource's state", 413: "Payload too large",
            415: "JSON body sent as another content type: send `Content-Type: application/json`",
            422: "Validation failed: see `errors[].field` and `errors[].reason`",
            503: "Database unavailable"}
    return {
        c: {"model": Problem, "description": text.get(c, "Error"),
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for c in codes
    }


OCTET: Responses = {200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
               "description": "NumPy bytes"}}


def build_api_router() -> APIRouter:
    from service.routes import (
        api_keys,
        builtin,
        datasets,
        events,
        fits,
        jobs,
        models,
        plots,
        sample_sets,
        sweeps,
    )

    router = APIRouter(prefix="/api/v1", responses=problems(400, 401, 422, 503))
    for module in (api_keys, builtin, datasets, fits, models, jobs, events, sample_sets, sweeps, plots):
        for route in module.router.routes:  # routes that read a JSON body answer 415 to another content type
            if isinstance(route, APIRoute) and request_hints.reads_json_body(route):
                route.responses = {**problems(415), **route.responses}
        router.include_router(module.router)
    return router
