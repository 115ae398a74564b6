"""Request security: the one authorisation dependency and the security-headers middleware.

:func:`authorize` is added to every route by ``create_app`` (as an app-wide dependency),
so a route is protected without its author doing anything: it looks the route up in
:data:`attune.auth.policy.POLICY` (unknown routes need ``admin``), authenticates the
bearer key, applies the key's rate limit, checks the scope (or, for a public key, the
user token) and leaves the :class:`~attune.auth.principal.Principal` on
``request.state.principal``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attune.auth.authenticator import Authenticator
from attune.auth.policy import Rule, rule_for
from attune.auth.principal import Principal
from attune.errors import PermissionDeniedError

USER_TOKEN_HEADER = "x-attune-user-token"


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def route_template(request: Request) -> str:
    """The path template of the matched route (``/v1/users/{user_id}``), else the path.

    FastAPI ≥ 0.16x includes routers lazily: the matched route's own ``path`` then lacks
    any include prefix, which the effective route context holds.
    """
    effective = request.scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(effective, "path", None) or getattr(request.scope.get("route"), "path", None)
    return path or request.url.path


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves through FastAPI routes, prefixes
    included (the policy's keys; tests check each is decided on purpose)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI before lazy router inclusion: routes are flat
        found = [(route.methods, route.path) for route in app.routes if hasattr(route, "methods")]
    else:
        found = [
            (getattr(c.original_route, "methods", None), c.path)
            for c in contexts(app.routes)
            if isinstance(c.original_route, APIRoute)
        ]
    return sorted({(m, p) for methods, p in found for m in methods or ()})


async def authorize(request: Request) -> None:
    """Authenticate and authorise one request against the policy table (see module doc)."""
    rule = rule_for(request.method, route_template(request))
    if rule.is_open:
        request.state.principal = None
        return
    auth: Authenticator = request.app.state.auth
    token = bearer_token(request)
    principal = auth.cached(token) or await run_in_threadpool(auth.authenticate, token)
    auth.throttle(principal)
    if principal.is_public:
        principal = await _public_access(request, rule, principal, auth)
    elif rule.scope is not None and not principal.allows(rule.scope):
        raise PermissionDeniedError(
            f"this key lacks the '{rule.scope}' scope needed for {request.method} "
            f"{route_template(request)}"
        )
    request.state.principal = principal


def _denied(message: str, loc: list[Any] | None = None) -> PermissionDeniedError:
    details = [{"loc": loc, "msg": message, "type": "forbidden"}] if loc else None
    return PermissionDeniedError(message, details=details)


async def _public_access(
    request: Request, rule: Rule, principal: Principal, auth: Authenticator
) -> Principal:
    """What a public key may do here: see :mod:`attune.auth.policy`."""
    token = request.headers.get(USER_TOKEN_HEADER)
    if rule.public == "allow":
        return principal
    if rule.public == "own_user":
        user_id = str(request.path_params.get("user_id", ""))
        if not token:
            raise _denied(
                "a public key needs the user's token (X-Attune-User-Token) for this route",
                ["header", "X-Attune-User-Token"],
            )
        if not auth.user_token_valid(principal, user_id, token):
            raise _denied(
                "the user token was not made for this user id with this key",
                ["header", "X-Attune-User-Token"],
            )
        return principal.for_user(user_id)
    if rule.public == "own_events":
        return await _own_events(request, principal, auth, token)
    raise _denied(
        f"a public key may not call {request.method} {route_template(request)}; "
        "use a secret key from your server"
    )


async def _own_events(
    request: Request, principal: Principal, auth: Authenticator, token: str | None
) -> Principal:
    """Public keys send events of the user their token was made for, or anonymous ones."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return principal  # malformed: the route answers 422
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        return principal
    verified: dict[str, bool] = {}
    refused: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict) or event.get("user_id") is None:
            continue
        user_id = event["user_id"]
        if isinstance(user_id, str):
            user_id = user_id.strip()
            if user_id not in verified:
                verified[user_id] = auth.user_token_valid(principal, user_id, token)
            if verified[user_id]:
                continue
        reason = (
            "a public key sends events with a user_id only with that user's token "
            "(X-Attune-User-Token); send anonymous_id instead"
            if not token
            else "the user token was not made for this user_id with this key"
        )
        refused.append(
            {"loc": ["body", "events", index, "user_id"], "msg": reason, "type": "forbidden"}
        )
    if refused:
        raise PermissionDeniedError(refused[0]["msg"], details=refused)
    users = [u for u, ok in verified.items() if ok]
    return principal.for_user(users[0]) if len(users) == 1 else principal


# --------------------------------------------------------------------- response headers

BASE_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)
INLINE_SCRIPT = re.compile(
    rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE
)
DOCS_PATHS = ("/docs", "/redoc")
DOCS_CDN = "https://cdn.jsdelivr.net"


def content_security_policy(html: bytes, path: str) -> str:
    """A CSP for one HTML page: its own inline scripts (by hash) and nothing else runs.

    FastAPI's ``/docs`` and ``/redoc`` load their viewer from its CDN, so those two pages
    also allow that origin.
    """
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in INLINE_SCRIPT.finditer(html)
    ]
    extra = f" {DOCS_CDN}" if path.startswith(DOCS_PATHS) else ""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'" + extra + "".join(" " + h for h in hashes),
            "style-src 'self' 'unsafe-inline'" + extra,
            "img-src 'self' data:" + (" https://fastapi.tiangolo.com" if extra else ""),
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        )
    )


class SecurityHeaders:
    """ASGI middleware: security headers on every answer.

    All: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
    ``Referrer-Policy: no-referrer`` (and HSTS over HTTPS). ``/v1`` answers:
    ``Cache-Control: no-store`` (they are personal). HTML pages: a Content-Security-Policy
    computed from the page (see :func:`content_security_policy`), for which the body is
    held back until complete (pages are small).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        held: Message | None = None
        parts: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASE_HEADERS:
                    headers.setdefault(name, value)
                if path.startswith("/v1/") or path == "/v1":
                    headers["cache-control"] = "no-store"
                if scope.get("scheme") == "https":
                    headers.setdefault("strict-transport-security", "max-age=31536000")
                if headers.get("content-type", "").startswith("text/html"):
                    held = message
                    return
                await send(message)
            elif message["type"] == "http.response.body" and held is not None:
                parts.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(parts)
                MutableHeaders(scope=held)["content-security-policy"] = content_security_policy(
                    body, path
                )
                await send(held)
                await send({"type": "http.response.body", "body": body, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, send_with_headers)
