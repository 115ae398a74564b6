"""The services of each workspace a server answers for, opened on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable

from attune.api.deps import Services
from attune.config import DEFAULT_WORKSPACE, Settings
from attune.store.factory import Stores, open_stores


class WorkspaceServices:
    """Workspace name → :class:`Services`, each on its own stores (database or schema,
    models). The default workspace's services are given; others are built lazily (their
    database is migrated then) and kept until :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        default: Services,
        build: Callable[[Settings, Stores], Services],
    ) -> None:
        self._settings = settings
        self._build = build
        self._services: dict[str, Services] = {DEFAULT_WORKSPACE: default}
        self._opened: list[Stores] = []
        self._lock = threading.Lock()

    def opened(self, workspace: str) -> Services | None:
        """The workspace's services if already open (no I/O), else None."""
        return self._services.get(workspace)

    def every(self) -> list[Services]:
        """The services of every workspace opened so far."""
        return list(self._services.values())

    def get(self, workspace: str) -> Services:
        services = self._services.get(workspace)
        if services is not None:
            return services
        with self._lock:
            services = self._services.get(workspace)
            if services is None:
                settings = self._settings.for_workspace(workspace)
                stores = open_stores(settings)
                self._opened.append(stores)
                services = self._build(settings, stores)
                services.models.refresh()
                self._services[workspace] = services
        return services

    def close(self) -> None:
        with self._lock:
            for stores in self._opened:
                stores.close()
            self._opened.clear()
            del_keys = [w for w in self._services if w != DEFAULT_WORKSPACE]
            for workspace in del_keys:
                del self._services[workspace]
