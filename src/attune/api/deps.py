"""FastAPI dependencies: the services of the running app, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from attune.auth.principal import Principal
from attune.config import DEFAULT_WORKSPACE, Settings
from attune.engine.model_holder import ModelHolder
from attune.engine.recommend import RecommendationService
from attune.errors import AuthenticationError
from attune.ingest.service import IngestService
from attune.privacy.service import PrivacyService
from attune.store.factory import Stores


@dataclass
class Services:
    """Everything a request handler may need, built once per app by ``create_app``."""

    settings: Settings
    stores: Stores
    ingest: IngestService
    models: ModelHolder
    recommendations: RecommendationService
    privacy: PrivacyService

    def user_key(self, external_id: str) -> str:
        """The stored id of a caller's user (or anonymous) id: use it before any store
        read or write keyed by a person (a keyed HMAC when pseudonymisation is on)."""
        return self.privacy.user_key(external_id)


def _services(request: Request) -> Services:
    """The services of the caller's workspace (the default one for open routes)."""
    principal = getattr(request.state, "principal", None)
    if principal is None or principal.workspace == DEFAULT_WORKSPACE:
        return request.app.state.services  # type: ignore[no-any-return]
    return request.app.state.workspaces.get(principal.workspace)  # type: ignore[no-any-return]


def _principal(request: Request) -> Principal:
    """Who is calling, as established by :func:`attune.api.security.authorize`."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthenticationError("this route needs an API key")
    return principal  # type: ignore[no-any-return]


def _settings(request: Request) -> Settings:
    return _services(request).settings


def _stores(request: Request) -> Stores:
    return _services(request).stores


def _ingest(request: Request) -> IngestService:
    return _services(request).ingest


def _recommendations(request: Request) -> RecommendationService:
    return _services(request).recommendations


SettingsDep = Annotated[Settings, Depends(_settings)]
StoresDep = Annotated[Stores, Depends(_stores)]
IngestDep = Annotated[IngestService, Depends(_ingest)]
RecommendationsDep = Annotated[RecommendationService, Depends(_recommendations)]
ServicesDep = Annotated[Services, Depends(_services)]
PrincipalDep = Annotated[Principal, Depends(_principal)]


def _privacy(request: Request) -> PrivacyService:
    return _services(request).privacy


PrivacyDep = Annotated[PrivacyService, Depends(_privacy)]
