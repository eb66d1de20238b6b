"""The promotion gate (champion / challenger): promote only a candidate that measures better.

Rule: the challenger is promoted when its nDCG@10 on the primary set (the synthetic dev split by default) is
at least ``min_gain`` above the champion's, and its nDCG@10 falls by no more than ``tolerance`` on any gate set.
Every set is also compared with a paired t-test and a Wilcoxon signed-rank test over its queries
(:func:`evaluation.significance.paired_test`); ``require_significance`` adds ``p < alpha`` on the primary set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evaluation.significance import PairedComparison, paired_test

PRIMARY_SET = "synthetic-dev"
METRIC = "ndcg@10"


@dataclass(frozen=True)
class GatePolicy:
    """When a challenger is promoted.

    Attributes:
        primary: The gate set whose gain decides.
        min_gain: The smallest rise of mean nDCG@10 on the primary set that counts.
        tolerance: The largest fall of mean nDCG@10 allowed on any gate set.
        require_significance: Also require a paired t-test p-value below ``alpha`` on the primary set.
        alpha: The significance level.
    """

    primary: str = PRIMARY_SET
    min_gain: float = 0.01
    tolerance: float = 0.02
    require_significance: bool = False
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.tolerance < 0:
            raise ValueError(f"tolerance must not be negative, got {self.tolerance}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class SetComparison:
    """Champion and challenger on one gate set.

    Attributes:
        name: The gate set.
        description: What it is.
        champion: Query id → champion's nDCG@10.
        challenger: Query id → challenger's nDCG@10.
        test: The paired tests (``a`` is the challenger, ``b`` the champion).
        texts: Query id → query text, for reports.
    """

    name: str
    description: str
    champion: dict[str, float]
    challenger: dict[str, float]
    test: PairedComparison
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def before(self) -> float:
        """The champion's mean nDCG@10."""
        return self.test.mean_b

    @property
    def after(self) -> float:
        """The challenger's mean nDCG@10."""
        return self.test.mean_a

    @property
    def delta(self) -> float:
        """After minus before."""
        return self.after - self.before

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-query scores)."""
        return {
            "description": self.description, "queries": len(self.champion), "metric": METRIC,
            "before": round(self.before, 4), "after": round(self.after, 4), "delta": round(self.delta, 4),
            "wins": self.test.wins, "losses": self.test.losses, "ties": self.test.ties,
            "t_pvalue": round(self.test.t_pvalue, 4), "wilcoxon_pvalue": round(self.test.wilcoxon_pvalue, 4),
        }


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and its reasons."""

    promoted: bool
    reasons: list[str]
    policy: GatePolicy
    sets: list[SetComparison] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"promoted": self.promoted, "reasons": self.reasons, "policy": self.policy.to_dict(),
                "sets": {s.name: s.summary() for s in self.sets}}


def compare(
    name: str, description: str, champion: Mapping[str, float], challenger: Mapping[str, float],
    alpha: float = 0.05, texts: Mapping[str, str] | None = None,
) -> SetComparison:
    """Pair the two models' per-query scores on one set.

    Args:
        name: The gate set.
        description: What it is.
        champion: Query id → the champion's nDCG@10.
        challenger: Query id → the challenger's nDCG@10.
        alpha: The significance level.
        texts: Query id → query text, for reports.

    Raises:
        ValueError: The two were not scored on the same queries.
    """
    test = paired_test("challenger", "champion", challenger, champion, METRIC, alpha=alpha)
    return SetComparison(name=name, description=description, champion=dict(champion),
                         challenger=dict(challenger), test=test, texts=dict(texts or {}))


def decide(sets: Sequence[SetComparison], policy: GatePolicy) -> GateDecision:
    """Apply the promotion rule.

    Args:
        sets: One comparison per gate set; one of them must be ``policy.primary``.
        policy: The rule's parameters.

    Returns:
        The decision, with one reason per check (why it passed or failed).

    Raises:
        ValueError: The primary set is not among the sets.
    """
    by_name = {s.name: s for s in sets}
    if policy.primary not in by_name:
        raise ValueError(f"primary gate set {policy.primary!r} was not scored; sets: {', '.join(by_name)}")
    primary = by_name[policy.primary]
    reasons: list[str] = []
    passed = True
    if primary.delta >= policy.min_gain:
        reasons.append(f"{METRIC} on {primary.name} rose by {primary.delta:+.4f} "
                       f"({primary.before:.4f} → {primary.after:.4f}), at least the required {policy.min_gain:+.4f}")
    else:
        passed = False
        reasons.append(f"{METRIC} on {primary.name} changed by {primary.delta:+.4f} "
                       f"({primary.before:.4f} → {primary.after:.4f}); promotion needs at least "
                       f"{policy.min_gain:+.4f}")
    if policy.require_significance:
        if primary.test.t_pvalue < policy.alpha:
            reasons.append(f"the gain on {primary.name} is significant (paired t-test p = {primary.test.t_pvalue:.4f})")
        else:
            passed = False
            reasons.append(f"the change on {primary.name} is not significant (paired t-test p = "
                           f"{primary.test.t_pvalue:.4f} ≥ {policy.alpha})")
    for comparison in sets:
        if comparison.delta < -policy.tolerance:
            passed = False
            reasons.append(f"{METRIC} on {comparison.name} fell by {-comparison.delta:.4f} "
                           f"({comparison.before:.4f} → {comparison.after:.4f}), more than the tolerated "
                           f"{policy.tolerance:.4f}")
        elif comparison.name != primary.name:
            reasons.append(f"{METRIC} on {comparison.name}: {comparison.before:.4f} → {comparison.after:.4f} "
                           f"({comparison.delta:+.4f}), within the tolerance of {policy.tolerance:.4f}")
    return GateDecision(promoted=passed, reasons=reasons, policy=policy, sets=list(sets))
