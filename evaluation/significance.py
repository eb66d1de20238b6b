"""Paired significance tests between retrieval methods, on per-query scores (scipy)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class PairedComparison:
    """Two methods compared on the same queries.

    Attributes:
        a: The first method.
        b: The second method.
        metric: The per-query metric compared.
        mean_a: Mean of ``a``.
        mean_b: Mean of ``b``.
        wins: Queries where ``a`` scores higher.
        losses: Queries where ``b`` scores higher.
        ties: Queries with equal scores.
        t_pvalue: Two-sided p-value of the paired Student's t-test.
        wilcoxon_pvalue: Two-sided p-value of the Wilcoxon signed-rank test.
        significant: Whether the t-test p-value is below ``alpha`` (not corrected for the number of pairs).
    """

    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    wins: int
    losses: int
    ties: int
    t_pvalue: float
    wilcoxon_pvalue: float
    significant: bool

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def paired_test(
    a: str, b: str, scores_a: Mapping[str, float], scores_b: Mapping[str, float], metric: str,
    alpha: float = ALPHA,
) -> PairedComparison:
    """Compare two methods' per-query scores with a paired t-test and a Wilcoxon signed-rank test.

    Args:
        a: Name of the first method.
        b: Name of the second method.
        scores_a: Query id → score of ``a``.
        scores_b: Query id → score of ``b`` (the same queries).
        metric: The metric's name, for the record.
        alpha: The significance level.

    Returns:
        The comparison. When the two are equal on every query, both p-values are 1.

    Raises:
        ValueError: The two do not cover the same queries.
    """
    from scipy import stats

    if set(scores_a) != set(scores_b):
        raise ValueError(f"{a} and {b} were not scored on the same queries")
    queries = sorted(scores_a)
    x = np.array([scores_a[q] for q in queries], dtype=np.float64)
    y = np.array([scores_b[q] for q in queries], dtype=np.float64)
    diff = x - y
    if len(queries) < 2 or np.allclose(diff, 0.0):
        t_p = w_p = 1.0
    else:
        t_p = float(stats.ttest_rel(x, y).pvalue)
        if math.isnan(t_p):  # every difference equal: no variance, but not zero either
            t_p = 0.0
        nonzero = diff[~np.isclose(diff, 0.0)]
        w_p = float(stats.wilcoxon(nonzero).pvalue) if nonzero.size else 1.0
    return PairedComparison(
        a=a, b=b, metric=metric, mean_a=float(x.mean()) if x.size else 0.0,
        mean_b=float(y.mean()) if y.size else 0.0,
        wins=int((diff > 1e-12).sum()), losses=int((diff < -1e-12).sum()),
        ties=int((np.abs(diff) <= 1e-12).sum()),
        t_pvalue=t_p, wilcoxon_pvalue=w_p, significant=t_p < alpha,
    )


def all_pairs(
    per_method: Mapping[str, Mapping[str, float]], metric: str, alpha: float = ALPHA
) -> list[PairedComparison]:
    """:func:`paired_test` between every pair of methods, in the order the methods are given.

    Args:
        per_method: Method → {query id: score}.
        metric: The metric's name.
        alpha: The significance level.
    """
    return [
        paired_test(a, b, per_method[a], per_method[b], metric, alpha)
        for a, b in itertools.combinations(per_method, 2)
    ]
