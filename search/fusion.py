"""Fusion of several ranked lists: weighted reciprocal rank fusion and normalised-score convex combination.

Two families, as compared by Bruch, Gai and Ingber (2023), "An analysis of fusion functions for hybrid
retrieval":

* :func:`reciprocal_rank_fusion`: ranks only, ``Σ w_i / (k + rank_i)``.
* :func:`convex_combination`: scores, each list normalised first (``minmax`` to [0, 1] or ``zscore``), then
  ``Σ w_i · s_i``. An item missing from a list gets that list's lowest normalised score (it ranked below
  everything that list returned).

:class:`FusionConfig` names one fusion (kind, the methods fused, their weights, its constants and the depth of
each candidate list); :func:`fuse` applies it. Index manifests store it as a dict (``mlsearch tune``). An index
without a tuned fusion uses :func:`untuned_fusion`: by default the equal-weight z-score combination of dense and
BM25, which scored at least as well as equal-weight RRF on every set measured (see the README).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar, cast, get_args

import numpy as np

from mlsearch.catalog import FUSED_METHOD, FUSED_PARTS
from mlsearch.configs import UntunedFusion

T = TypeVar("T", bound=Hashable)

FUSION_KINDS: tuple[str, ...] = ("rrf", "convex")
NORMALIZATIONS: tuple[str, ...] = ("minmax", "zscore")
DEFAULT_DEPTH = 100
UNTUNED_FUSIONS: tuple[str, ...] = get_args(UntunedFusion)
"""Names of the fusions an untuned index can use (``MLSEARCH_FUSION``)."""
DEFAULT_UNTUNED_FUSION: UntunedFusion = "zscore"


@dataclass(frozen=True)
class FusionConfig:
    """How hybrid search fuses its methods' candidate lists.

    Attributes:
        kind: ``rrf`` (weighted reciprocal rank fusion) or ``convex`` (normalised-score convex combination).
        methods: The methods fused, e.g. ``("dense", "bm25")``.
        weights: One weight per method (any positive scale; RRF and convex use them as given).
        rrf_k: The RRF smoothing constant.
        normalization: ``minmax`` or ``zscore`` (convex only).
        depth: Candidates retrieved per method before fusing (at least the ``k`` asked for).
        source: Where the choice came from (``default``, or a note from ``mlsearch tune``).

    Raises:
        ValueError: An unknown kind or normalisation, weights that do not match the methods, a negative weight,
            or a non-positive ``rrf_k`` or ``depth``.
    """

    kind: Literal["rrf", "convex"] = "rrf"
    methods: tuple[str, ...] = FUSED_PARTS
    weights: tuple[float, ...] = (1.0, 1.0)
    rrf_k: int = 60
    normalization: Literal["minmax", "zscore"] = "minmax"
    depth: int = DEFAULT_DEPTH
    source: str = "default"

    def __post_init__(self) -> None:
        if self.kind not in FUSION_KINDS:
            raise ValueError(f"unknown fusion {self.kind!r}; valid: {', '.join(FUSION_KINDS)}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
        if not self.methods or len(self.weights) != len(self.methods):
            raise ValueError(f"fusion needs one weight per method, got methods {self.methods} and weights "
                             f"{self.weights}")
        if any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights):
            raise ValueError(f"fusion weights must be non-negative and not all zero, got {self.weights}")
        if self.rrf_k <= 0 or self.depth <= 0:
            raise ValueError(f"rrf_k and depth must be positive, got {self.rrf_k} and {self.depth}")

    def label(self) -> str:
        """A short human-readable name, e.g. ``convex-minmax dense:0.7 bm25:0.3``."""
        head = f"rrf(k={self.rrf_k})" if self.kind == "rrf" else f"convex-{self.normalization}"
        parts = " ".join(f"{m}:{w:g}" for m, w in zip(self.methods, self.weights, strict=True))
        return f"{head} {parts}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (as stored in an index manifest)."""
        data = asdict(self)
        data["methods"], data["weights"] = list(self.methods), list(self.weights)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FusionConfig:
        """The config a :meth:`to_dict` dict describes (unknown keys are ignored).

        Raises:
            ValueError: A bad value (see the class).
        """
        known = {"kind", "methods", "weights", "rrf_k", "normalization", "depth", "source"}
        values = {k: v for k, v in data.items() if k in known}
        if "methods" in values:
            values["methods"] = tuple(values["methods"])
        if "weights" in values:
            values["weights"] = tuple(float(w) for w in values["weights"])
        return cls(**values)


FUSION_VARIANTS: dict[str, FusionConfig] = {
    f"{FUSED_METHOD}-rrf": FusionConfig(kind="rrf", source="fixed variant: equal-weight RRF (k=60) of dense and BM25"),
    f"{FUSED_METHOD}-convex": FusionConfig(kind="convex", normalization="minmax",
                                  source="fixed variant: equal-weight min-max convex combination"),
    f"{FUSED_METHOD}-zscore": FusionConfig(kind="convex", normalization="zscore",
                                  source="fixed variant: equal-weight z-score convex combination"),
}
"""Fixed fusions that ``mlsearch eval`` can report beside ``hybrid`` (the index's own fusion)."""


def untuned_fusion(name: str = DEFAULT_UNTUNED_FUSION, rrf_k: int = 60, depth: int = DEFAULT_DEPTH) -> FusionConfig:
    """The fusion hybrid search uses on an index that ``mlsearch tune`` has not tuned: dense and BM25, equal weights.

    ``zscore`` (the default) is the equal-weight z-score convex combination; it scored at least as well as
    equal-weight RRF on the built-in set, Cranfield and an answer-span set over a user's notes, each by 0.01 to
    0.016 nDCG@10. ``minmax`` is the min-max convex combination, ``rrf`` the reciprocal rank fusion used before.

    Args:
        name: ``zscore``, ``minmax`` or ``rrf``.
        rrf_k: The RRF constant (``rrf`` only).
        depth: Candidates retrieved per method.

    Raises:
        ValueError: An unknown name.

    Example:
        >>> untuned_fusion().label()
        'convex-zscore dense:1 bm25:1'
    """
    if name not in UNTUNED_FUSIONS:
        raise ValueError(f"unknown untuned fusion {name!r}; valid: {', '.join(UNTUNED_FUSIONS)}")
    if name == "rrf":
        return FusionConfig(kind="rrf", rrf_k=rrf_k, depth=depth, source="default: equal-weight RRF")
    return FusionConfig(kind="convex", normalization=cast(Literal["minmax", "zscore"], name), rrf_k=rrf_k,
                        depth=depth, source=f"default: equal-weight {name} convex combination")


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[T]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[T, float]]:
    """Fuse rankings by summing ``w / (k + rank)`` (rank from 1) for every list an item appears in.

    Cormack, Clarke and Büttcher (2009), "Reciprocal rank fusion outperforms Condorcet and individual rank
    learning methods". Ties are broken by the best rank an item reached, then by first appearance.

    Args:
        rankings: Each a list of item ids, best first.
        k: The smoothing constant (60 in the paper).
        weights: One weight per ranking (all 1 when omitted).

    Returns:
        ``(item, fused score)`` pairs, best first.

    Raises:
        ValueError: ``k`` not positive, or weights that do not match the rankings.

    Example:
        >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)[0][0]
        'b'
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    weights = _weights(weights, len(rankings))
    scores: dict[T, float] = {}
    best: dict[T, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best[item] = min(best.get(item, rank), rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], order[kv[0]]))


def normalize_scores(scores: Sequence[float], how: str = "minmax") -> np.ndarray:
    """Scores rescaled for fusion.

    Args:
        scores: One list's scores.
        how: ``minmax`` (to [0, 1]; all equal → all 1) or ``zscore`` (mean 0, standard deviation 1; all equal →
            all 0).

    Raises:
        ValueError: An unknown normalisation.

    Example:
        >>> normalize_scores([2.0, 1.0, 0.0]).tolist()
        [1.0, 0.5, 0.0]
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return values
    if how == "minmax":
        low, high = float(values.min()), float(values.max())
        return np.ones_like(values) if high - low <= 1e-12 else (values - low) / (high - low)
    if how == "zscore":
        std = float(values.std())
        return np.zeros_like(values) if std <= 1e-12 else (values - float(values.mean())) / std
    raise ValueError(f"unknown normalization {how!r}; valid: {', '.join(NORMALIZATIONS)}")


def convex_combination(
    lists: Sequence[Sequence[tuple[T, float]]], weights: Sequence[float] | None = None, normalization: str = "minmax"
) -> list[tuple[T, float]]:
    """Fuse scored lists by a weighted sum of their normalised scores.

    An item missing from a list counts as that list's lowest normalised score. Ties are broken by first
    appearance.

    Args:
        lists: Each a list of ``(item, score)`` pairs (higher is better), best first.
        weights: One weight per list (all 1 when omitted).
        normalization: ``minmax`` or ``zscore`` (see :func:`normalize_scores`).

    Returns:
        ``(item, fused score)`` pairs, best first.

    Raises:
        ValueError: Weights that do not match the lists, or an unknown normalisation.

    Example:
        >>> convex_combination([[("a", 3.0), ("b", 2.5), ("z", 0.0)], [("b", 0.9), ("c", 0.1)]])[0][0]
        'b'
    """
    weights = _weights(weights, len(lists))
    normalised: list[dict[T, float]] = []
    floors: list[float] = []
    for pairs in lists:
        values = normalize_scores([s for _, s in pairs], normalization)
        normalised.append({item: float(v) for (item, _), v in zip(pairs, values, strict=True)})
        floors.append(float(values.min()) if values.size else 0.0)
    order: dict[T, int] = {}
    for pairs in lists:
        for item, _ in pairs:
            order.setdefault(item, len(order))
    fused = {
        item: sum(w * scores.get(item, floor) for w, scores, floor in zip(weights, normalised, floors, strict=True))
        for item in order
    }
    return sorted(fused.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def fuse(config: FusionConfig, lists: Sequence[Sequence[tuple[T, float]]]) -> list[tuple[T, float]]:
    """Fuse one candidate list per method of ``config`` (in its order), as the config says.

    Raises:
        ValueError: Not one list per method.
    """
    if len(lists) != len(config.methods):
        raise ValueError(f"fusion of {config.methods} needs {len(config.methods)} lists, got {len(lists)}")
    if config.kind == "rrf":
        return reciprocal_rank_fusion([[item for item, _ in pairs] for pairs in lists], config.rrf_k, config.weights)
    return convex_combination(lists, config.weights, config.normalization)


def _weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weight(s) for {count} list(s)")
    return [float(w) for w in weights]
