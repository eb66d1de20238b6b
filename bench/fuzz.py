"""Schema-driven fuzzing: schemathesis generates requests from the live app's OpenAPI document.

Every operation of the document (every route and method) gets ``--cases`` generated requests, half that fit
the schema and half that break it. Every other case carries the real key in ``X-API-Key`` (the admin key),
so that the admin and read-key routes are fuzzed past their key check; the rest carry what was generated
(missing or wrong keys: 401 and 403). Each answer is checked for server errors, conformance of the body and
headers to the declared response schema, a declared status code and a declared content type; the totals are
printed per operation and per check.

A 503 ``backend_unavailable`` is the service's documented answer for a backend that the index lacks or whose
server is down (Elasticsearch is not configured here); it is counted apart and not as a failure.

    python -m bench.fuzz [--cases 300] [--seed 0] [--max-minutes 30]

The app runs in-process over the tiny test corpus with the fake encoder (no model, no network), with an
admin key and a read key configured. Operations without parameters have a single distinct request, and an
operation whose every input is valid has no negative cases; the totals say so. ``--max-minutes`` bounds the
run: operations not started by then are listed as not reached.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance,
          response_headers_conformance]
ADMIN_KEY = "fuzz-admin-key"
READ_KEY = "fuzz-read-key"


@dataclass
class FuzzReport:
    """What a fuzz run sent and found."""

    cases: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    declared_unavailable: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    no_negative: list[str] = field(default_factory=list)
    operation_seconds: dict[str, float] = field(default_factory=dict)
    operation_statuses: dict[str, Counter[int]] = field(default_factory=dict)
    checks_run: Counter[str] = field(default_factory=Counter)
    checks_failed: Counter[str] = field(default_factory=Counter)
    with_key: int = 0
    not_reached: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        """5xx answers other than the documented 503 for an unavailable backend."""
        return sum(n for status, n in self.statuses.items() if status >= 500) - self.declared_unavailable

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "cases": self.cases, "seconds": round(self.seconds, 1), "operations": dict(self.by_operation),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "server_errors": self.server_errors, "declared_503_backend_unavailable": self.declared_unavailable,
            "with_key": self.with_key, "checks_run": dict(self.checks_run), "checks_failed": dict(self.checks_failed),
            "operation_statuses": {op: {str(k): v for k, v in sorted(c.items())}
                                   for op, c in self.operation_statuses.items()},
            "no_negative": self.no_negative, "not_reached": self.not_reached,
            "failures": dict(self.failures), "examples": self.examples,
        }


def _declared_unavailable(response: Any) -> bool:
    if response.status_code != 503:
        return False
    try:
        return bool(response.json().get("error") == "backend_unavailable")
    except ValueError:
        return False


def fuzz(app: FastAPI, cases: int = 300, seed_value: int = 0, max_seconds: float | None = None) -> FuzzReport:
    """Send ``cases`` generated requests to every operation of ``app``'s OpenAPI document.

    Schemathesis calls the app in-process (ASGI) and runs its lifespan once, on the first request, for the
    rest of the process; this waits until the app has loaded its index before fuzzing.

    Args:
        app: The app (its ``/openapi.json`` is read).
        cases: Requests per operation, half positive and half negative.
        seed_value: Hypothesis seed, for a reproducible run.
        max_seconds: Start no operation (or mode) after this many seconds; those left are ``not_reached``.

    Returns:
        The report; failures are collected, never raised.
    """
    report = FuzzReport()
    started = time.perf_counter()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    _wait_ready(schema)
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation whose schema cannot be used is a failure, not a crash
            report.failures[f"invalid operation schema: {result.err()}"] += 1
            continue
        operation = result.ok()
        t = time.perf_counter()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                report.not_reached.append(f"{operation.label} ({mode.value})")
                continue
            _fuzz_operation(operation, mode, max(1, cases // 2), seed_value, report)
        report.operation_seconds[operation.label] = time.perf_counter() - t
    report.seconds = time.perf_counter() - started
    return report


def _wait_ready(schema: Any, timeout: float = 120.0) -> None:
    ready = schema["/ready"]["GET"]
    deadline = time.monotonic() + timeout
    while ready.Case().call().status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the fuzz target did not load its index")
        time.sleep(0.05)


def _fuzz_operation(operation: Any, mode: GenerationMode, count: int, seed_value: int, report: FuzzReport) -> None:
    @seed(seed_value)
    @hypothesis_settings(
        max_examples=count, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        keyed = report.cases % 2 == 0  # every other case past the key check
        headers = {"X-API-Key": ADMIN_KEY} if keyed else None
        response = case.call(headers=headers)
        report.cases += 1
        report.with_key += keyed
        report.by_operation[operation.label] += 1
        report.statuses[response.status_code] += 1
        report.operation_statuses.setdefault(operation.label, Counter())[response.status_code] += 1
        checks = CHECKS
        if _declared_unavailable(response):
            report.declared_unavailable += 1
            checks = [check for check in CHECKS if check is not not_a_server_error]
        for check in checks:
            report.checks_run[check.__name__] += 1
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except FailureGroup as group:
                report.checks_failed[check.__name__] += 1
                for failure in group.exceptions:
                    key = f"{operation.label}: {failure.title}"
                    report.failures[key] += 1
                    report.examples.setdefault(key, f"{case.as_curl_command(headers=headers)} -> "
                                                    f"{response.status_code} {response.text[:300]}")

    try:
        run()
    except Unsatisfiable:  # nothing to break: an operation without parameters or body has no negative cases
        report.no_negative.append(operation.label)


def fuzz_target(workdir: Path) -> FastAPI:
    """The app over the tiny test corpus (built into ``workdir``) with the fake encoder; not started."""
    from pydantic import SecretStr

    from api.app import create_app
    from api.state import searcher_factory
    from indexing.backends.configs import build_config
    from indexing.build import build_index
    from mlsearch.settings import Settings
    from tests.conftest import TINY_CORPUS
    from tests.fakes import HashingEncoder

    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, text in TINY_CORPUS.items():
        (corpus / name).write_text(text)
    settings = Settings(
        index_dir=workdir / "indexes" / "default", state_dir=workdir / "state", corpus_dir=corpus,
        chunk_target_tokens=48, chunk_overlap_tokens=8, watch_index=False,
        backend_options={"annoy": {"trees": 10}, "lsi": {"dimensions": 16}},
        admin_api_key=SecretStr(ADMIN_KEY), read_api_key=SecretStr(READ_KEY),
    )
    encoder = HashingEncoder()
    build_index(build_config(settings), encoder, corpus_dir=corpus, backends=["faiss", "annoy", "lsi", "bm25"])
    return create_app(settings, searcher_factory(lambda name: encoder))


def main() -> None:
    """Run the fuzzer and print the totals."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="Generated requests per operation.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="Start no operation after this many minutes (the rest are listed as not reached).")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlsearch-fuzz-") as tmp:
        max_seconds = args.max_minutes * 60 if args.max_minutes is not None else None
        report = fuzz(fuzz_target(Path(tmp)), cases=args.cases, seed_value=args.seed, max_seconds=max_seconds)
    if args.json:
        print(json.dumps(report.summary(), indent=2))
        return
    print_report(report)


def print_report(report: FuzzReport) -> None:
    """Print the totals: per operation (cases, statuses, time), per check, and each failure with an example."""
    print(f"{report.cases} generated cases over {len(report.by_operation)} operations in {report.seconds:.0f} s "
          f"({report.with_key} with the admin key)")
    print(f"\n{'operation':<28} {'cases':>6} {'seconds':>8}  statuses")
    for label, count in sorted(report.by_operation.items()):
        statuses = report.operation_statuses.get(label, Counter())
        note = "  (no negative cases)" if label in report.no_negative else ""
        print(f"{label:<28} {count:>6} {report.operation_seconds.get(label, 0):8.1f}  "
              + " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())) + note)
    print(f"\n{'check':<30} {'run':>6} {'failed':>6}")
    for check in CHECKS:
        name = check.__name__
        print(f"{name:<30} {report.checks_run[name]:>6} {report.checks_failed[name]:>6}")
    print("\nstatuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(report.statuses.items())))
    print(f"5xx (unexpected): {report.server_errors}; documented 503 backend_unavailable: "
          f"{report.declared_unavailable}")
    if report.not_reached:
        print(f"not reached within --max-minutes: {', '.join(report.not_reached)}")
    print(f"check failures: {sum(report.failures.values())}")
    for key, count in report.failures.most_common():
        print(f"  {count:>5}  {key}\n         e.g. {report.examples[key]}")


if __name__ == "__main__":
    main()
