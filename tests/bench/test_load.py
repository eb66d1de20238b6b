"""The load benchmark: the keyword goal read on the service's defaults, bare encodings paired in blocks."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from bench.load import PAIR_BLOCK, is_default, run_cell


def test_the_default_variant_is_int8_openvino_with_micro_batching() -> None:
    assert is_default("openvino-int8", True)
    assert not is_default("openvino-int8", False)
    assert not is_default("openvino", True)
    assert not is_default("torch", True)


def test_paired_bare_encodes_come_in_blocks_just_before_their_requests() -> None:
    events: list[tuple[str, str]] = []

    async def post(path: str, body: dict[str, object]) -> SimpleNamespace:
        events.append(("search", str(body["query"])))
        return SimpleNamespace(status=200, body=b"", headers={"server-timing": "app;dur=1.0"},
                               json=lambda: json.loads('{"took_ms": 0.5}'))

    async def bare(query: str) -> float:
        events.append(("bare", query))
        return 2.0

    queries = [f"q{i}" for i in range(7)]
    cell = asyncio.run(run_cell(post, "dense", 1, queries, 25, 60, 10, 3, bare))  # type: ignore[arg-type]
    assert cell.requests == 25 and cell.errors == 0 and cell.paired_bare_p50_ms == 2.0
    searched = [q for kind, q in events if kind == "search"]
    assert searched == [queries[(3 + i) % 7] for i in range(25)]
    for block in range(3):  # each block's queries encoded, then searched, in the same order
        start = block * 2 * PAIR_BLOCK
        encoded = [q for _, q in events[start:start + PAIR_BLOCK]]
        assert all(kind == "bare" for kind, _ in events[start:start + PAIR_BLOCK])
        assert encoded[: len(searched[block * PAIR_BLOCK:(block + 1) * PAIR_BLOCK])] == \
            searched[block * PAIR_BLOCK:(block + 1) * PAIR_BLOCK]
