"""Layer 2, store: Protocols per kind and the backends that implement them."""

from attune.store.factory import Stores, open_stores

__all__ = ["Stores", "open_stores"]
