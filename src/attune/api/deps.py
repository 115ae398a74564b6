"""FastAPI dependencies: the services of the running app, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from attune.config import Settings
from attune.engine.model_holder import ModelHolder
from attune.engine.recommend import RecommendationService
from attune.ingest.service import IngestService
from attune.store.factory import Stores


@dataclass
class Services:
    """Everything a request handler may need, built once per app by ``create_app``."""

    settings: Settings
    stores: Stores
    ingest: IngestService
    models: ModelHolder
    recommendations: RecommendationService


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


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
