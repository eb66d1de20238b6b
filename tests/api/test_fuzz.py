"""Schema-driven fuzzing, quick profile: schemathesis over every operation of the live app's OpenAPI document.

``python -m bench.fuzz --cases 300`` runs the same checks with thousands of cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz import fuzz, fuzz_target


@pytest.mark.fuzz
def test_generated_requests_get_no_server_error_and_match_the_schema(tmp_path: Path) -> None:
    report = fuzz(fuzz_target(tmp_path), cases=24, seed_value=0)
    assert report.failures == {}, "\n".join(f"{k}: {report.examples[k]}" for k in report.failures)
    assert report.server_errors == 0
    assert len(report.by_operation) >= 11  # every route and method of the document was exercised
    assert report.cases >= 200
    assert report.statuses[200] > 0 and report.statuses[422] > 0
