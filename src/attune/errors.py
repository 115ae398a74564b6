"""The one error tree. Domain code raises these; the API renders them (status + JSON)."""

from __future__ import annotations

import math
from typing import Any


class AttuneError(Exception):
    """Base of every error Attune raises on purpose.

    Attributes:
        status_code: the HTTP status the API answers with.
        code: a short machine-readable name.
        details: a list of ``{"loc": [...], "msg": ...}`` entries pointing at the cause.
    """

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers: dict[str, str] = {}  # extra HTTP response headers (WWW-Authenticate, …)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class ValidationError(AttuneError):
    """Input that does not satisfy the contract (bad field, bad file row, bad option)."""

    status_code = 422
    code = "validation_error"


class PayloadTooLargeError(AttuneError):
    status_code = 413
    code = "payload_too_large"


class NotFoundError(AttuneError):
    status_code = 404
    code = "not_found"


class ConflictError(AttuneError):
    status_code = 409
    code = "conflict"


class ConsentError(AttuneError):
    status_code = 403
    code = "consent_required"


class NotSupportedError(AttuneError):
    """A model or store lacks an optional ability (the message names the class)."""

    status_code = 501
    code = "not_supported"


class NotReadyError(AttuneError):
    """The service cannot answer yet (no data, no trained model)."""

    status_code = 503
    code = "not_ready"


class ConfigurationError(AttuneError):
    status_code = 500
    code = "configuration_error"


class AuthenticationError(AttuneError):
    """No API key, or one that is unknown or revoked (answered with WWW-Authenticate)."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, details=details)
        self.headers["WWW-Authenticate"] = 'Bearer realm="attune"'


class PermissionDeniedError(AttuneError):
    """A valid key that may not do this (missing scope, another person's data)."""

    status_code = 403
    code = "forbidden"


class RateLimitedError(AttuneError):
    """Too many requests for this key; ``retry_after`` seconds until the next is allowed."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
