"""FastAPI dependencies: the services of the running app, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

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


async def _services(request: Request) -> Services:
    """The services of the caller's workspace (the default one for open routes).

    The dependencies here are ``async``: FastAPI runs a plain function dependency in a
    worker thread, a hop that costs more than these lookups. Only opening a workspace
    for the first time (its stores, maybe migrations) goes to a thread."""
    principal = getattr(request.state, "principal", None)
    if principal is None or principal.workspace == DEFAULT_WORKSPACE:
        return request.app.state.services  # type: ignore[no-any-return]
    workspaces = request.app.state.workspaces
    services = workspaces.opened(principal.workspace)
    if services is None:
        services = await run_in_threadpool(workspaces.get, principal.workspace)
    return services  # type: ignore[no-any-return]


async def _principal(request: Request) -> Principal:
    """Who is calling, as established by :func:`attune.api.security.authorize`."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthenticationError("this route needs an API key")
    return principal  # type: ignore[no-any-return]


async def _settings(request: Request) -> Settings:
    return (await _services(request)).settings


async def _stores(request: Request) -> Stores:
    return (await _services(request)).stores


async def _ingest(request: Request) -> IngestService:
    return (await _services(request)).ingest


async def _recommendations(request: Request) -> RecommendationService:
    return (await _services(request)).recommendations


SettingsDep = Annotated[Settings, Depends(_settings)]
StoresDep = Annotated[Stores, Depends(_stores)]
IngestDep = Annotated[IngestService, Depends(_ingest)]
RecommendationsDep = Annotated[RecommendationService, Depends(_recommendations)]
ServicesDep = Annotated[Services, Depends(_services)]
PrincipalDep = Annotated[Principal, Depends(_principal)]


async def _privacy(request: Request) -> PrivacyService:
    return (await _services(request)).privacy


PrivacyDep = Annotated[PrivacyService, Depends(_privacy)]
