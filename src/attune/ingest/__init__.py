"""Layer 1, collect: schemas, validation, deduplication, bulk importers and the event bus."""
