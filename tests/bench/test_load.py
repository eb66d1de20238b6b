"""The load benchmark reads the keyword goal on the service's defaults."""

from __future__ import annotations

from bench.load import is_default


def test_the_default_variant_is_int8_openvino_with_micro_batching() -> None:
    assert is_default("openvino-int8", True)
    assert not is_default("openvino-int8", False)
    assert not is_default("openvino", True)
    assert not is_default("torch", True)
