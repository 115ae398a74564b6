"""The application factory: ``create_app(settings)`` builds a ready FastAPI app.

Nothing is built at import time. Stores are opened when the app starts (or injected by
tests), and every service hangs off ``app.state.services``.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse

from attune import __version__
from attune.api.deps import Services
from attune.api.errors import BodySizeLimit, install_error_handlers
from attune.api.openapi import install_openapi
from attune.api.routes import (
    audit,
    events,
    health,
    items,
    keys,
    model_versions,
    placements,
    preferences,
    privacy,
    recommendations,
    users,
)
from attune.api.security import SecurityHeaders, authorize
from attune.api.workspaces import WorkspaceServices
from attune.auth.authenticator import Authenticator
from attune.config import DEFAULT_WORKSPACE, Settings
from attune.engine.background import Ticker
from attune.engine.broadcast import ServerBroadcast
from attune.engine.erasure_watch import ErasureWatch
from attune.engine.model_holder import ModelHolder
from attune.engine.recommend import RecommendationService
from attune.ingest.service import IngestService
from attune.privacy.erasure import ERASE_ACTION, ForgettingModels
from attune.privacy.service import PrivacyService
from attune.store.factory import Stores, open_stores
from attune.store.sessions import MemorySessionStore
from attune.training.jobs import TrainJobs

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def build_services(
    settings: Settings, stores: Stores, broadcast: ServerBroadcast | None = None
) -> Services:
    """A workspace's services; with ``broadcast`` (Redis), its erasures and catalog
    writes reach every server process at once."""
    models = ModelHolder(stores, refresh_seconds=settings.model_refresh_seconds, settings=settings)
    forgetting: ForgettingModels = models
    ingest = IngestService(settings, stores)
    recommendations = RecommendationService(stores, models, settings)
    if broadcast is None and isinstance(stores.sessions, MemorySessionStore):
        # another process's erasure (`attune users erase`) reaches this one's memory
        recommendations.erasures = ErasureWatch(stores, ERASE_ACTION, settings.workspace)
    if broadcast is not None:
        broadcast.attach(settings.workspace, models, recommendations.engine)
        forgetting = broadcast.forgetting(settings.workspace, models)
        recommendations.announce_catalog = functools.partial(
            broadcast.publish_catalog, settings.workspace
        )
    # each accepted event updates the person's live session and drops their cached lists
    ingest.bus.subscribe(recommendations.on_events)
    return Services(
        settings=settings,
        stores=stores,
        ingest=ingest,
        models=models,
        recommendations=recommendations,
        privacy=PrivacyService(settings, stores, forgetting, settle=recommendations.log.flush),
    )


IDLE_TICK_SECONDS = 1.0
"""How often an idle server starts the checks requests would (at most)."""


def _keep_fresh(workspaces: WorkspaceServices) -> None:
    """Start each workspace's due checks, as a request would: a newer model version,
    a changed catalog (both load in the background, while requests go on)."""
    for services in workspaces.every():
        services.models.current()
        services.recommendations.engine.filters.snapshot()


def _count_trending(services: Services) -> None:
    """The first count of trending items; a failure is logged, and the count is tried
    again by the first request that needs it (on a worker thread)."""
    try:
        services.recommendations.engine.trending.top(1)
    except Exception:
        log.exception("could not count trending items at startup")


def create_app(settings: Settings | None = None, stores: Stores | None = None) -> FastAPI:
    """Build the API. ``stores`` is for tests; by default they are opened from settings."""
    # the app answers for every workspace: the caller's key picks one per request
    settings = (settings or Settings()).for_workspace(DEFAULT_WORKSPACE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = stores is None
        opened = open_stores(settings) if own else stores
        assert opened is not None
        broadcast = ServerBroadcast.for_stores(opened)  # None without Redis
        app.state.services = build_services(settings, opened, broadcast)
        app.state.services.models.refresh()
        # trending items are counted from the event store (a second or more at millions
        # of events): count them before the first request, not during a list on the loop
        await run_in_threadpool(_count_trending, app.state.services)
        # what is loaded now lives for the whole process: keep it out of the collector's
        # scans, which would otherwise pause requests as caches fill up
        gc.freeze()
        app.state.auth = Authenticator(settings, opened.keys)
        app.state.workspaces = WorkspaceServices(
            settings, app.state.services, functools.partial(build_services, broadcast=broadcast)
        )
        app.state.broadcast = broadcast
        app.state.train_jobs = TrainJobs()
        if broadcast is not None:
            broadcast.start()
        ticker = Ticker(
            functools.partial(_keep_fresh, app.state.workspaces),
            max(settings.model_refresh_seconds, IDLE_TICK_SECONDS),
            "idle-refresh",
        )
        ticker.start()
        try:
            yield
        finally:
            ticker.stop()
            app.state.train_jobs.stop()  # a fit must not promote a version after we are gone
            if broadcast is not None:
                broadcast.stop()
            app.state.services.recommendations.log.flush()
            app.state.workspaces.close()
            if own:
                opened.close()

    app = FastAPI(
        title="Attune",
        version=__version__,
        description="Open-source AI personalization engine: events in, recommendations out.",
        lifespan=lifespan,
        # every route, including those added later, is checked against the auth policy
        dependencies=[Depends(authorize)],
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(SecurityHeaders)
    # routes are matched in this order, one by one: the hot ones (lists, events) first
    for module in (
        recommendations,
        events,
        health,
        items,
        users,
        preferences,
        privacy,
        placements,
        keys,
        audit,
        model_versions,
    ):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/demo")

    @app.get("/demo", include_in_schema=False)
    def demo() -> FileResponse:
        return FileResponse(STATIC / "demo.html", media_type="text/html")

    return app
