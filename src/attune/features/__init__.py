"""Layer 3, learn: features (interaction matrices, user and item aggregates)."""
