"""Privacy: consent, erasure, export, pseudonymisation, scrubbing and retention.

Cross-cutting: ingestion asks :mod:`.consent`, :mod:`.pseudonyms` and :mod:`.scrubbing`
what to store; the API and CLI reach the rest through :class:`.service.PrivacyService`.
"""
