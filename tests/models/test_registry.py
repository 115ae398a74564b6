from __future__ import annotations

import pytest

from attune.errors import ValidationError
from attune.models.item_knn import ItemKNNRecommender
from attune.models.registry import available_models, model_class


def test_builtin_names_and_dotted_paths_resolve():
    assert {"popularity", "item_knn"} <= set(available_models())
    assert model_class("item_knn") is ItemKNNRecommender
    assert model_class("attune.models.item_knn:ItemKNNRecommender") is ItemKNNRecommender


def test_unknown_or_wrong_names_are_clear_errors():
    with pytest.raises(ValidationError, match="available"):
        model_class("no_such_model")
    with pytest.raises(ValidationError, match="not a Recommender"):
        model_class("attune.config:Settings")


def test_importing_attune_stays_light():
    import subprocess
    import sys

    heavy = ("torch", "psycopg", "fastapi", "scipy")
    code = f"import attune, sys; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
