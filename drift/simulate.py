"""Replay a query stream through the detectors offline: when would each of them have fired?

Used by ``mlsearch drift simulate`` (to tune thresholds before deploying) and by ``bench/drift.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drift.features import QueryObservation, observe_queries
from drift.monitor import DriftEngine, DriftStatus
from drift.reference import Reference
from mlsearch.configs import DriftConfig

__all__ = ["DETECTORS", "Replay", "fired", "observe_queries", "replay"]

DETECTORS: tuple[str, ...] = ("ks", "psi", "ks+psi", "adwin", "cusum", "mmd", "warning", "drift")
"""What a replay watches: each detector alone, and the service's status (``warning`` or worse, ``drift``)."""


def fired(status: DriftStatus) -> dict[str, bool]:
    """Which detectors fire in a status (warm-up silences only the status, not the detectors)."""
    out = {name: bool(status.detectors.get(name, False)) for name in DETECTORS if name in status.detectors}
    out["warning"] = status.status in ("warning", "drift")
    out["drift"] = status.status == "drift"
    return out


@dataclass
class Replay:
    """The outcome of a replay.

    Attributes:
        first_fire: For each detector, the 1-based index of the first stream query after which it fired
            (None: never).
        statuses: The status after each stream query.
        final: The last full status.
    """

    first_fire: dict[str, int | None] = field(default_factory=dict)
    statuses: list[str] = field(default_factory=list)
    final: DriftStatus | None = None


def replay(
    reference: Reference | DriftEngine, stream: list[QueryObservation], config: DriftConfig | None = None,
    mmd_every: int = 1, stop_when_all_fired: bool = False,
) -> Replay:
    """Feed the stream query by query and evaluate after each.

    Args:
        reference: The reference, or an engine that has already seen part of the stream.
        stream: The queries, in arrival order.
        config: Sizes and thresholds (needed with a reference).
        mmd_every: Run the (costlier) MMD test every this many queries; 0 never.
        stop_when_all_fired: Stop once every detector has fired.
    """
    if isinstance(reference, DriftEngine):
        engine = reference
    else:
        engine = DriftEngine(reference, config or DriftConfig())
    result = Replay(first_fire=dict.fromkeys(DETECTORS))
    if not (mmd_every and engine.config.mmd):
        result.first_fire.pop("mmd")
    for index, observation in enumerate(stream, start=1):
        engine.observe([observation])
        with_mmd = bool(mmd_every and engine.config.mmd and index % mmd_every == 0)
        status = engine.evaluate(with_mmd=with_mmd)
        result.statuses.append(status.status)
        result.final = status
        for name, on in fired(status).items():
            if on and name in result.first_fire and result.first_fire[name] is None:
                result.first_fire[name] = index
        if stop_when_all_fired and all(v is not None for v in result.first_fire.values()):
            break
    return result
