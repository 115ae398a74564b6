"""Model artifact store on the local file system: one folder per model version."""

from __future__ import annotations

import shutil
from pathlib import Path

from attune.errors import NotFoundError


class LocalArtifactStore:
    """Folders under ``root``; URIs are ``file://`` URLs to them.

    See :class:`attune.store.protocols.ArtifactStore`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_for(self, version_id: str) -> Path:
        path = self.root / version_id
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def uri_for(self, version_id: str) -> str:
        return (self.root / version_id).as_uri()

    def open(self, uri: str) -> Path:
        path = Path(uri.removeprefix("file://")) if uri.startswith("file://") else Path(uri)
        if not path.is_dir():
            raise NotFoundError(f"model artifact {uri} is missing")
        return path

    def erase_user(self, user_id: str) -> int:
        """Artifacts written by the built-in models index items, never users: nothing to do."""
        return 0
