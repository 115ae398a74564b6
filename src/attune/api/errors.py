"""Render every error as ``{"error": {"code", "message", "details"}}`` with a proper status.

Domain code raises :class:`attune.errors.AttuneError`; FastAPI's own validation errors
and oversized bodies are mapped to the same shape. Nothing escapes as a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attune.errors import AttuneError

log = logging.getLogger(__name__)


def error_body(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        entry = {
            "loc": list(err.get("loc", ())),
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        if err.get("type") == "json_invalid":
            entry["msg"] = "malformed JSON: " + str(err.get("ctx", {}).get("error", err.get("msg")))
        details.append(entry)
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AttuneError)
    async def _attune(_request: Request, exc: AttuneError) -> JSONResponse:
        if exc.status_code >= 500 and exc.status_code not in (501, 503):
            log.error("%s: %s", type(exc).__name__, exc.message)
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        malformed = any(d["type"] == "json_invalid" for d in details)
        message = "malformed JSON body" if malformed else "request does not match the schema"
        return JSONResponse(error_body("validation_error", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot even decode (not UTF-8): malformed JSON,
            # reported as every other malformed body is (found by schemathesis)
            detail = {
                "loc": ["body"],
                "msg": "malformed JSON: " + str(exc.detail),
                "type": "json_invalid",
            }
            return JSONResponse(
                error_body("validation_error", "malformed JSON body", [detail]), status_code=422
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


class BodySizeLimit:
    """ASGI middleware: answer 413 once a request body exceeds ``max_bytes``.

    Checks the declared Content-Length first, then reads the body (at most ``max_bytes``)
    before the app sees it, so a chunked upload cannot slip past the limit. Reading it
    here, rather than raising from inside the app's ``receive``, matters: FastAPI turns
    any error raised while it reads a body into a 400.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        parts: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its whole body
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.max_bytes:
                await self._reject(send)
                return
            parts.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body exceeds {self.max_bytes} bytes"

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(error_body("payload_too_large", self._message()), status_code=413)
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})
