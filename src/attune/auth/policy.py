"""Who may call what: one table from (method, route template) to the access it needs.

Every route of the API is checked against this table by one dependency that the app
adds to all its routes (:func:`attune.api.security.authorize`). A route missing from the
table needs the ``admin`` scope: a new route is locked down until someone decides
otherwise here.

Public keys (browser and app) are narrower than any scope: ``allow`` routes are open to
them, ``own_user`` routes only for the user id in the path whose HMAC user token they
present, ``own_events`` (POST /v1/events) only for events of that user or anonymous ones,
and everything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from attune.auth.principal import Scope

PublicAccess = Literal["deny", "allow", "own_user", "own_events"]


@dataclass(frozen=True, slots=True)
class Rule:
    """The access one route needs.

    Attributes:
        scope: the scope a secret key needs; None for a route open to everyone (no key).
        public: what a public key may do there.
    """

    scope: Scope | None
    public: PublicAccess = "deny"

    @property
    def is_open(self) -> bool:
        return self.scope is None


OPEN = Rule(None)
ADMIN = Rule("admin")
DEFAULT = ADMIN
"""The rule of any route not in :data:`POLICY`."""

POLICY: dict[tuple[str, str], Rule] = {
    # open: probes, metrics, the demo page (it asks for a key itself)
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/"): OPEN,
    ("GET", "/demo"): OPEN,
    # ingest: events, catalog and profile writes, a person's own settings
    ("POST", "/v1/events"): Rule("ingest", "own_events"),
    ("PUT", "/v1/items/{item_id}"): Rule("ingest"),
    ("PATCH", "/v1/items/{item_id}"): Rule("ingest"),
    ("POST", "/v1/items:batch"): Rule("ingest"),
    ("DELETE", "/v1/items/{item_id}"): Rule("ingest"),
    ("POST", "/v1/items:delete"): Rule("ingest"),
    ("PUT", "/v1/users/{user_id}"): Rule("ingest"),
    ("PUT", "/v1/users/{user_id}/preferences"): Rule("ingest", "own_user"),
    ("PATCH", "/v1/users/{user_id}/preferences"): Rule("ingest", "own_user"),
    ("PUT", "/v1/users/{user_id}/consent"): Rule("ingest", "own_user"),
    # read: recommendations, similar and trending items, catalog and profile reads
    ("GET", "/v1/users/{user_id}/recommendations"): Rule("read", "own_user"),
    ("GET", "/v1/items/{item_id}/similar"): Rule("read", "allow"),
    ("GET", "/v1/trending"): Rule("read", "allow"),
    ("POST", "/v1/rank"): Rule("read"),
    ("GET", "/v1/items/{item_id}"): Rule("read"),
    ("GET", "/v1/items"): Rule("read"),
    ("GET", "/v1/users/{user_id}"): Rule("read"),
    ("GET", "/v1/users"): Rule("read"),
    ("GET", "/v1/users/{user_id}/events"): Rule("read"),
    ("GET", "/v1/users/{user_id}/preferences"): Rule("read", "own_user"),
    ("GET", "/v1/users/{user_id}/consent"): Rule("read", "own_user"),
    # admin (also the default): keys, audit, placements, segments, erasure, export, models
    ("GET", "/v1/keys"): ADMIN,
    ("POST", "/v1/keys"): ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): ADMIN,
    ("GET", "/v1/audit"): ADMIN,
    ("GET", "/v1/placements"): ADMIN,
    ("GET", "/v1/placements/{name}"): ADMIN,
    ("PUT", "/v1/placements/{name}"): ADMIN,
    ("DELETE", "/v1/placements/{name}"): ADMIN,
    ("GET", "/v1/segments"): ADMIN,
    ("GET", "/v1/segments/{name}"): ADMIN,
    ("PUT", "/v1/segments/{name}"): ADMIN,
    ("DELETE", "/v1/segments/{name}"): ADMIN,
    ("DELETE", "/v1/users/{user_id}"): ADMIN,
    ("GET", "/v1/users/{user_id}/export"): ADMIN,
    ("GET", "/v1/models"): ADMIN,
    ("GET", "/v1/models/{version_id}"): ADMIN,
    ("POST", "/v1/models/{version_id}/rollback"): ADMIN,
    ("POST", "/v1/models/train"): ADMIN,
    ("GET", "/v1/models/train/{job_id}"): ADMIN,
}


def rule_for(method: str, path_template: str) -> Rule:
    """The rule of a route; HEAD is judged as GET, and unknown routes need ``admin``."""
    verb = "GET" if method.upper() == "HEAD" else method.upper()
    return POLICY.get((verb, path_template), DEFAULT)
