"""Layer 4, decide: turn loaded models and live history into answers."""
