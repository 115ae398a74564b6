"""API keys, user tokens, the access policy, rate limits and the audit log.

See :mod:`attune.auth.keys` (tokens), :mod:`attune.auth.policy` (who may call what),
:mod:`attune.auth.authenticator` (verification, caching, rate limits),
:mod:`attune.auth.signing` (user tokens), :mod:`attune.auth.manage` (create, revoke).
"""

from attune.auth.keys import ApiKey
from attune.auth.principal import SCOPES, Principal, Scope

__all__ = ["SCOPES", "ApiKey", "Principal", "Scope"]
