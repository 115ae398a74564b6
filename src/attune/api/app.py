"""The application factory: ``create_app(settings)`` builds a ready FastAPI app.

Nothing is built at import time. Stores are opened when the app starts (or injected by
tests), and every service hangs off ``app.state.services``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse

from attune import __version__
from attune.api.deps import Services
from attune.api.errors import BodySizeLimit, install_error_handlers
from attune.api.routes import events, health, items, recommendations, users
from attune.config import Settings
from attune.engine.model_holder import ModelHolder
from attune.engine.recommend import RecommendationService
from attune.ingest.service import IngestService
from attune.store.factory import Stores, open_stores

STATIC = Path(__file__).resolve().parent / "static"


def build_services(settings: Settings, stores: Stores) -> Services:
    models = ModelHolder(stores, refresh_seconds=settings.model_refresh_seconds)
    return Services(
        settings=settings,
        stores=stores,
        ingest=IngestService(settings, stores),
        models=models,
        recommendations=RecommendationService(stores, models),
    )


def create_app(settings: Settings | None = None, stores: Stores | None = None) -> FastAPI:
    """Build the API. ``stores`` is for tests; by default they are opened from settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = stores is None
        opened = open_stores(settings) if own else stores
        assert opened is not None
        app.state.services = build_services(settings, opened)
        app.state.services.models.refresh()
        try:
            yield
        finally:
            if own:
                opened.close()

    app = FastAPI(
        title="Attune",
        version=__version__,
        description="Open-source AI personalization engine: events in, recommendations out.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    for module in (health, events, items, users, recommendations):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/demo")

    @app.get("/demo", include_in_schema=False)
    def demo() -> FileResponse:
        return FileResponse(STATIC / "demo.html", media_type="text/html")

    return app
