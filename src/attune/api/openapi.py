"""The published contract (``/openapi.json``): auth schemes and the one error shape.

FastAPI documents validation errors as ``HTTPValidationError``; Attune answers every
error as ``{"error": {"code", "message", "details"}}``. This fills in what FastAPI cannot
know: that shape for every error, and, from :mod:`attune.auth.policy`, which operations
need a key, which scope, and their 401/403/429 answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from attune.auth.policy import rule_for

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable name"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "loc": {"type": "array", "items": {}},
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
AUTH_RESPONSES: dict[str, dict[str, Any]] = {
    "401": {
        "description": "No API key, or an unknown or revoked one",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": {"description": "The key may not do this (scope, public key, user token)"},
    "429": {
        "description": "The key's rate limit is exceeded",
        "headers": {"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}},
    },
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
API_ERRORS = {
    "404": "Unknown item, user, placement, key, … (or a reference to one)",
    "503": "Not ready: no trained model in this workspace yet",
}
BODY_ERRORS = {"413": "Body over ATTUNE_MAX_BODY_BYTES, or a batch over its limit"}


def _error_response(description: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        **(extra or {}),
        "description": description,
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def describe_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Add security schemes, per-operation security and the error shape to ``schema``."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An Attune API key: atk_sk_… (secret) or atk_pk_… (public)",
        },
        "userToken": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Attune-User-Token",
            "description": "With a public key: hex HMAC-SHA256(signing secret, user id)",
        },
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                if status.startswith(("4", "5")):
                    responses[status] = _error_response(
                        response.get("description", "Error"),
                        {k: v for k, v in response.items() if k == "headers"},
                    )
            if path.startswith("/v1/"):
                errors = {**API_ERRORS, **(BODY_ERRORS if "requestBody" in operation else {})}
                for status, description in errors.items():
                    responses.setdefault(status, _error_response(description))
            rule = rule_for(method, path)
            if rule.is_open:
                operation["security"] = []
                continue
            operation["security"] = [{"apiKey": []}]
            if rule.public == "own_user" or rule.public == "own_events":
                operation["security"].append({"apiKey": [], "userToken": []})
            for status, response in AUTH_RESPONSES.items():
                responses.setdefault(
                    status,
                    _error_response(
                        response["description"],
                        {k: v for k, v in response.items() if k == "headers"},
                    ),
                )
            public = {
                "deny": "not with a public key",
                "allow": "also with a public key",
                "own_user": "with a public key only with that user's token",
                "own_events": "with a public key only for the token's user or anonymous ids",
            }[rule.public]
            note = f"Needs the `{rule.scope}` scope ({public})."
            operation["description"] = (operation.get("description", "") + "\n\n" + note).strip()
    schemas = components["schemas"]
    text = repr(schema.get("paths"))
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f"#/components/schemas/{unused}'" not in text:
            schemas.pop(unused)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` publish the described contract (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_security(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
