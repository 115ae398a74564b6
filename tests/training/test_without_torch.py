"""The core install has no PyTorch: everything but SASRec must still train and tune."""

from __future__ import annotations

import subprocess
import sys
import textwrap

NO_TORCH = "import sys\nsys.modules['torch'] = None  # as if not installed: imports fail\n"


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tuning_leaves_out_only_sasrec_without_torch():
    out = _run(
        """
        from attune.training.tuning import _available
        print(",".join(_available(["sasrec", "feature_mf", "als", "bpr", "ease"])))
        """
    )
    assert out.strip() == "feature_mf,als,bpr,ease"


def test_factorisation_over_labels_fits_without_torch():
    out = _run(
        """
        import numpy as np, pandas as pd
        from attune.features.interactions import WeightPolicy, build_dataset
        from attune.models.registry import create_model

        rows = [
            (f"u{u}", f"i{(u + k) % 9}", "view", np.nan, 1e9 + k)
            for u in range(12)
            for k in range(4)
        ]
        events = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])
        labels = [["a"] if k % 2 else ["b"] for k in range(10)]
        catalog = pd.DataFrame({"item_id": [f"i{k}" for k in range(10)], "categories": labels})
        data = build_dataset(events, WeightPolicy(), catalog)
        model = create_model("feature_mf", {"factors": 4, "epochs": 3}).fit(data)
        index, _ = model.recommend(data.matrix[[0]], n=3)
        print(len(index[0]))
        """
    )
    assert out.strip() == "3"
