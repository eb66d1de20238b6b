"""Drift monitoring of a running service, without the API: record, flush, status, reference file, reset."""

from __future__ import annotations

from pathlib import Path

import pytest

from drift.service import DriftService
from indexing.backends.configs import drift_service_config, search_config
from mlsearch.errors import DriftError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

IN_DOMAIN = [
    "dropout rate for hidden layers", "adam learning rate", "momentum in gradient descent",
    "population stability index bins", "kolmogorov smirnov test", "faiss hnsw index", "dropout at inference",
    "sgd with momentum velocity", "drift warning threshold", "similarity search dense vectors",
]


@pytest.fixture
def searcher(built_index: Path, drift_settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    return Searcher.open(built_index, search_config(drift_settings), encoder=fake_encoder)


def test_status_reflects_every_recorded_query(drift_settings: Settings, searcher: Searcher) -> None:
    service = DriftService(drift_service_config(drift_settings)).start()
    try:
        for query in IN_DOMAIN * 2:
            assert service.record(searcher, query, "dense", 5)
        status = service.status()
        assert status.reference_size == 10 and status.window_size == 10
        assert status.log["rows"] == 20 and status.log["written"] == 20 and status.log["text_mode"] == "full"
        assert service.reset().status == "warming_up"
    finally:
        service.stop()
    assert (drift_settings.resolved_state_dir / "drift" / "queries.sqlite").is_file()
    assert (drift_settings.resolved_state_dir / "drift" / "collecting.json").is_file()


def test_a_reference_file_is_measured_once_and_reused_after_a_restart(
    drift_settings: Settings, searcher: Searcher, tmp_path: Path
) -> None:
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join(IN_DOMAIN) + "\n")
    settings = drift_settings.model_copy(update={"drift_reference_file": reference})
    service = DriftService(drift_service_config(settings), searcher=lambda: searcher).start()
    service.record(searcher, "adam optimizer", "bm25", 3)  # answered before the reference was measured
    status = service.status()
    assert status.reference_size == len(IN_DOMAIN) and status.window_size == 1
    assert status.reference["source"] == f"file:{reference}"
    service.stop()

    restarted = DriftService(drift_service_config(settings), searcher=lambda: searcher)
    assert restarted.ensure_reference(searcher)
    assert restarted.monitor.reference is not None
    assert restarted.monitor.reference.created_at == pytest.approx(status.reference["created_at"])
    assert restarted.status().window_size == 1
    restarted.stop()


def test_a_missing_reference_file_fails_fast(drift_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(DriftError, match="not found"):
        missing = drift_settings.model_copy(update={"drift_reference_file": tmp_path / "nope.txt"})
        DriftService(drift_service_config(missing))


def test_the_report_page_is_drawn_again_only_when_something_changed(
    drift_settings: Settings, searcher: Searcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    import drift.service as module

    drawn: list[int] = []

    def render(data: object) -> str:
        drawn.append(1)
        return f"page {len(drawn)}"

    monkeypatch.setattr(module, "render_html", render)
    service = DriftService(drift_service_config(drift_settings)).start()
    try:
        service.record(searcher, "adam learning rate", "dense", 5)
        first = service.report_page()
        assert service.report_page() == first and len(drawn) == 1  # nothing logged since: the same page
        service.record(searcher, "dropout rate", "dense", 5)
        assert service.report_page() != first and len(drawn) == 2  # a new query: drawn again
        service.reset()
        service.report_page()
        assert len(drawn) == 3  # a new reference: drawn again
    finally:
        service.stop()
