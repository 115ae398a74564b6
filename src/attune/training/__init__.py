"""Layer 3, learn: training pipelines that turn stored events into model versions."""
