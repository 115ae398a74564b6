"""The recommender zoo behind one interface (:mod:`attune.models.base`) and a lazy registry."""
