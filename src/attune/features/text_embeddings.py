"""Sentence embeddings of catalog text from a model that ships inside its PyPI package.

The encoder is WordLlama's ``l2_supercat`` model (256 dimensions; its weights and
tokenizer are files of the ``wordllama`` wheel, installed by ``pip install
'attune[embeddings]'``). It is loaded from the package's own folder with downloads
turned off, so nothing is fetched at run time: without the package, asking for
embeddings is a :class:`~attune.errors.NotSupportedError` that says what to install.
A text's vector is the normalised average of its tokens' vectors, trained so that
texts meaning similar things point the same way: "space adventure" and "science
fiction" land near each other where TF-IDF, matching words only, sees nothing shared.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attune.errors import NotSupportedError

PACKAGE = "wordllama"
MODEL = "l2_supercat"
DIMENSIONS = 256
BATCH = 1_024
"""Texts embedded at once (the encoder pads each batch to its longest text)."""

_lock = threading.Lock()
_encoder: Any = None
_last: tuple[int, np.ndarray] | None = None
"""The last call's texts (by hash) and answer: tuning fits the content model many times
over one catalog, and embedding 100,000 texts takes seconds."""


def embeddings_available() -> bool:
    """Whether the encoder's package is installed (the ``embeddings`` extra)."""
    return importlib.util.find_spec(PACKAGE) is not None


def embed_texts(texts: Sequence[str], remember: bool = True) -> np.ndarray:
    """One L2-normalised float32 row of :data:`DIMENSIONS` per text; blank texts get a
    zero row (nothing to say about them). The answer is read-only (it may be shared
    with the next call for the same texts). ``remember=False`` leaves the memo of the
    last call alone (a few texts embedded while serving should not evict a catalog's)."""
    global _last
    if not remember:
        out = _embed(texts)
        out.flags.writeable = False
        return out
    key = hash(tuple(texts))
    last = _last
    if last is not None and last[0] == key:
        return last[1]
    out = _embed(texts)
    out.flags.writeable = False
    _last = (key, out)
    return out


def _embed(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    filled = [k for k, text in enumerate(texts) if text.strip()]
    if not filled:
        return out
    encoder = _load()
    for start in range(0, len(filled), BATCH):
        rows = filled[start : start + BATCH]
        vectors = np.asarray(encoder.embed([texts[k] for k in rows], norm=True), np.float32)
        out[rows] = vectors
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def warm() -> None:
    """Load the encoder now: a server does it while it prepares a model version that
    embeds, not inside the first request that needs it (half a second)."""
    _load()


def _load() -> Any:
    """The encoder, loaded once per process from the installed package's files."""
    global _encoder
    with _lock:
        if _encoder is None:
            try:
                import wordllama
            except ImportError as exc:
                raise NotSupportedError(
                    "sentence embeddings need the wordllama package: "
                    "pip install 'attune[embeddings]'"
                ) from exc
            # the wheel holds the weights and tokenizer under its own folder, laid out as
            # the library's cache is: point the cache there and forbid downloads
            folder = Path(wordllama.__file__).resolve().parent
            _encoder = wordllama.WordLlama.load(
                config=MODEL, dim=DIMENSIONS, cache_dir=folder, disable_download=True
            )
    return _encoder
