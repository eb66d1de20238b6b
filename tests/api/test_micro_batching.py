"""The service wires micro-batching in: a batcher per model, kept across reloads of the same model."""

from __future__ import annotations

from pathlib import Path

from api.state import searcher_factory
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder


def test_factory_gives_searchers_a_batcher_kept_while_the_model_is(built_index: Path, settings: Settings) -> None:
    encoder = HashingEncoder()
    factory = searcher_factory(lambda name: encoder)
    first = factory(settings, None)
    assert first.batcher is not None and first.batcher.max_wait == settings.micro_batch_wait_ms / 1000
    vector = first.embed_query("dropout rate")
    assert first.batcher.queries == 1
    assert (vector == encoder.encode(["dropout rate"])[0]).all()
    second = factory(settings, first)
    assert second.batcher is first.batcher  # same model: same batcher, no second set of threads

    off = factory(settings.model_copy(update={"micro_batch": False}), None)
    assert off.batcher is None
