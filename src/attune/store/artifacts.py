"""Model artifact store on the local file system: one folder per model version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

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

    def delete(self, uri: str) -> int:
        """Remove the folder at ``uri`` (only one under this store's root)."""
        try:
            path = self.open(uri)
        except NotFoundError:
            return 0
        if self.root not in path.resolve().parents:
            raise ValueError(f"{uri} is not an artifact of this store")
        freed = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path)
        return freed

    def erase_user(self, user_id: str) -> int:
        """Drop ``user_id``'s rows from every saved model; returns the rows removed.

        Models that keep per-user state save ``state_user_ids`` (training user index →
        external id) beside ``state_user_*`` arrays indexed the same way (e.g. ALS user
        factors): the person's entry goes from all of them, so a server (re)loading the
        version never sees them again. Models without user ids hold nothing to find by id.
        """
        removed = 0
        for arrays in sorted(self.root.glob(f"**/{ARRAYS_FILE}")):
            removed += _drop_user_rows(arrays, user_id)
        return removed


ARRAYS_FILE = "arrays.npz"
USER_IDS = "state_user_ids"
USER_ARRAY_PREFIX = "state_user_"


def _drop_user_rows(path: Path, user_id: str) -> int:
    """Rewrite one ``arrays.npz`` without ``user_id``'s rows (atomically); rows removed."""
    with np.load(path, allow_pickle=False) as data:
        if USER_IDS not in data.files:
            return 0
        user_ids = data[USER_IDS]
        doomed = user_ids.astype(str) == user_id
        if not doomed.any():
            return 0
        arrays = {name: data[name] for name in data.files}
    keep = ~doomed
    for name, values in arrays.items():
        per_user = values.ndim >= 1 and values.shape[0] == len(user_ids)
        if name.startswith(USER_ARRAY_PREFIX) and per_user:
            arrays[name] = values[keep]
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.savez(handle, **arrays)
    os.replace(partial, path)
    return int(doomed.sum())
