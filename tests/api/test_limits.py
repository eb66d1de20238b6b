"""The search runner: cheap lone searches on the event loop, the rest in worker threads under the timeout."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.errors import SearchTimeoutError
from api.limits import KINDS_KEPT, SearchRunner
from tests.api.conftest import service_state


def where(pause: float = 0.0) -> int:
    """The thread a search ran in (after ``pause`` seconds)."""
    time.sleep(pause)
    return threading.get_ident()


def test_a_kind_not_seen_yet_runs_in_a_thread_then_a_cheap_lone_one_on_the_loop() -> None:
    async def scenario() -> tuple[int, int, int]:
        runner = SearchRunner(timeout_s=5, inline_ms=50)
        first = await runner.run("bm25", where)
        second = await runner.run("bm25", where)
        return threading.get_ident(), first, second

    loop_thread, first, second = asyncio.run(scenario())
    assert first != loop_thread  # no estimate yet: a worker thread, under the timeout
    assert second == loop_thread


def test_a_kind_slower_than_the_budget_stays_in_threads() -> None:
    async def scenario() -> tuple[int, list[int], float | None]:
        runner = SearchRunner(timeout_s=5, inline_ms=5)
        ran = [await runner.run("dense", where, 0.02) for _ in range(3)]
        return threading.get_ident(), ran, runner.recent_ms("dense")

    loop_thread, ran, recent = asyncio.run(scenario())
    assert loop_thread not in ran
    assert recent is not None and recent >= 15


def test_searches_in_flight_together_all_go_to_threads() -> None:
    async def scenario() -> tuple[int, list[int], SearchRunner]:
        runner = SearchRunner(timeout_s=5, inline_ms=50)
        await runner.run("bm25", where)  # the kind is known and cheap
        ran = await asyncio.gather(*(runner.run("bm25", where, 0.01) for _ in range(4)))
        return threading.get_ident(), list(ran), runner

    loop_thread, ran, runner = asyncio.run(scenario())
    assert loop_thread not in ran  # each saw the others once they had arrived
    assert runner.inline_runs == 0 and runner.thread_runs == 5 and runner.in_flight == 0


def test_a_budget_of_zero_or_no_kind_means_always_a_thread() -> None:
    async def scenario(runner: SearchRunner, key: str | None) -> list[int]:
        return [await runner.run(key, where) for _ in range(3)]

    for runner, key in ((SearchRunner(5, inline_ms=0), "bm25"), (SearchRunner(5, inline_ms=50), None)):
        assert threading.main_thread().ident not in asyncio.run(scenario(runner, key))
        assert runner.inline_runs == 0


def test_a_search_that_slows_down_goes_back_to_threads() -> None:
    async def scenario() -> tuple[int, list[int]]:
        runner = SearchRunner(timeout_s=5, inline_ms=20)
        ran = [await runner.run("bm25", where, pause) for pause in (0, 0, 0.2, 0, 0)]
        return threading.get_ident(), ran

    loop_thread, ran = asyncio.run(scenario())
    assert ran[1] == loop_thread and ran[2] == loop_thread  # cheap so far: the slow one ran on the loop
    assert ran[3] != loop_thread and ran[4] != loop_thread  # its 200 ms lifted the average past 20 ms


def test_errors_reach_the_caller_on_the_loop_as_in_a_thread() -> None:
    def fail(message: str) -> None:
        raise ValueError(message)

    async def scenario() -> SearchRunner:
        runner = SearchRunner(timeout_s=5, inline_ms=50)
        await runner.run("k", where)
        with pytest.raises(ValueError, match="bad query"):
            await runner.run("k", fail, "bad query")  # on the loop
        return runner

    runner = asyncio.run(scenario())
    assert runner.inline_runs == 1 and runner.in_flight == 0


def test_a_search_in_a_thread_still_times_out() -> None:
    async def scenario() -> None:
        runner = SearchRunner(timeout_s=0.05, inline_ms=50)
        with pytest.raises(SearchTimeoutError, match="MLSEARCH_REQUEST_TIMEOUT_S"):
            await runner.run("slow", where, 0.5)

    asyncio.run(scenario())


def test_the_service_answers_a_lone_keyword_search_on_the_event_loop(client: TestClient) -> None:
    runner = service_state(client.app).runner  # type: ignore[arg-type]
    answers = [client.post("/search", json={"query": f"dropout {i}", "method": "bm25"}) for i in range(3)]
    assert all(a.status_code == 200 for a in answers)
    assert answers[0].json()["results"] == client.post("/search", json={"query": "dropout 0", "method": "bm25"}
                                                       ).json()["results"]
    assert runner.inline_runs >= 2 and runner.thread_runs >= 1
    exported = client.get("/metrics").text
    assert f'mlsearch_search_runs_total{{where="loop"}} {float(runner.inline_runs)}' in exported
    assert f'mlsearch_search_runs_total{{where="thread"}} {float(runner.thread_runs)}' in exported


def test_quiet_for_is_zero_while_a_search_runs_and_grows_after() -> None:
    async def scenario() -> tuple[float, float]:
        runner = SearchRunner(timeout_s=5, inline_ms=0)
        during: list[float] = []
        await runner.run(None, lambda: during.append(runner.quiet_for()))
        await asyncio.sleep(0.05)
        return during[0], runner.quiet_for()

    during, after = asyncio.run(scenario())
    assert during == 0.0 and after >= 0.04


def test_the_estimates_of_old_kinds_are_forgotten() -> None:
    async def scenario() -> SearchRunner:
        runner = SearchRunner(timeout_s=5, inline_ms=50)
        for version in range(KINDS_KEPT + 10):
            await runner.run((f"v{version}", "bm25"), where)
        return runner

    runner = asyncio.run(scenario())
    assert len(runner._recent_ms) == KINDS_KEPT
    assert runner.recent_ms(("v0", "bm25")) is None and runner.recent_ms((f"v{KINDS_KEPT + 9}", "bm25")) is not None
