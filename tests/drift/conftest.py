"""Fixtures of the drift tests: synthetic query observations and drift settings over the tiny index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from drift.features import QueryObservation
from mlsearch.configs import DriftConfig
from mlsearch.settings import Settings

DIMENSION = 16


@pytest.fixture
def make_observations() -> Callable[..., list[QueryObservation]]:
    """Synthetic observations: embeddings around a fixed direction, top scores around ``score``.

    ``shift`` moves the embeddings away from the direction (off-topic traffic: lower top scores and keyword
    matches, more unknown terms).
    """

    def make(count: int, seed: int = 0, shift: float = 0.0, score: float = 0.6) -> list[QueryObservation]:
        rng = np.random.default_rng(seed)
        direction = np.ones(DIMENSION) / np.sqrt(DIMENSION)
        out = []
        for _ in range(count):
            vector = direction + 0.3 * rng.standard_normal(DIMENSION) + shift * rng.standard_normal(DIMENSION)
            vector /= np.linalg.norm(vector)
            out.append(QueryObservation(
                embedding=vector.astype(np.float32), token_count=int(rng.integers(6, 16)),
                unknown_share=float(rng.random() < 0.1 + shift) * 0.5,
                top_score=float(score - shift * 0.3 + 0.05 * rng.standard_normal()),
                keyword_match=float(np.clip(0.5 - shift * 0.3 + 0.1 * rng.standard_normal(), 0, 1)), result_count=10,
                text=f"query {seed}-{len(out)}",
            ))
        return out

    return make


@pytest.fixture
def small_config() -> DriftConfig:
    """Reference and window of 40, verdicts from 10 queries."""
    return DriftConfig(reference_size=40, window=40, min_window=10)


@pytest.fixture
def drift_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The tiny-index settings with small drift sizes and a state directory in the test's folder."""
    return settings.model_copy(update={
        "state_dir": tmp_path / "state", "drift_reference_size": 10, "drift_window": 10, "drift_min_window": 5,
        "drift_store_text": "full",
    })
