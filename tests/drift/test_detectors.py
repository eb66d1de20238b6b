"""Each detector against known distributions: identical samples stay quiet, a shifted mean fires."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drift.detectors import (
    SCORE_CLIP,
    AdwinTracker,
    OneSidedCusum,
    ScoreScale,
    adjust_p_values,
    calibrate_joint_cusum,
    ks_test,
    mmd_test,
    normal_scores,
    psi,
    psi_value,
)


def samples(seed: int, size: int, mean: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, size)


def test_ks_is_quiet_for_one_distribution_and_fires_for_a_shift() -> None:
    reference = samples(0, 200)
    same = ks_test(reference, samples(1, 200))
    shifted = ks_test(reference, samples(2, 200, mean=0.8))
    assert same is not None and shifted is not None
    assert same.p_value > 0.05
    assert shifted.p_value < 1e-6 and shifted.statistic > 0.25


def test_ks_ignores_missing_values_and_needs_both_samples() -> None:
    assert ks_test([1.0, 2.0, math.nan], [math.nan]) is None
    result = ks_test([1.0, 2.0, 3.0, math.nan], [1.0, 2.0, 3.0])
    assert result is not None and result.statistic == 0.0


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    # Holm: sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08 -> monotone 0.09, 0.5
    assert np.allclose(adjust_p_values(p, "holm"), [0.04, 0.09, 0.09, 0.5])
    # BH: p * m / rank = 0.04, 0.0533, 0.04, 0.5 -> step-up minimum from the top: 0.04, 0.0533, 0.0533, 0.5
    assert np.allclose(adjust_p_values(p, "bh"), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert adjust_p_values([], "holm").size == 0
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values(p, "bonferroni")  # type: ignore[arg-type]


def test_psi_formula_on_a_hand_computed_example() -> None:
    # (0.5 - 0.25) ln 2 + 0 + (0.25 - 0.5) ln 0.5 = 0.5 ln 2
    assert psi_value([0.25, 0.25, 0.5], [0.5, 0.25, 0.25]) == pytest.approx(0.5 * math.log(2))
    reference = np.arange(100, dtype=float)  # quartile edges 24.75, 49.5, 74.25: a quarter in each bin
    window = np.array([0.0] * 20 + [30.0] * 10 + [60.0] * 5 + [90.0] * 5)  # shares 1/2, 1/4, 1/8, 1/8
    result = psi(reference, window, bins=4, min_per_bin=10)
    assert result is not None
    assert result.edges == pytest.approx([24.75, 49.5, 74.25])
    assert result.reference_share == pytest.approx([0.25] * 4)
    assert result.window_share == pytest.approx([0.5, 0.25, 0.125, 0.125])
    # 0.25 ln 2 + 2 * (0.125 ln 2) = 0.5 ln 2
    assert result.value == pytest.approx(0.5 * math.log(2))


def test_psi_guards_empty_bins_small_windows_and_ties() -> None:
    reference = np.arange(200, dtype=float)
    empty_bins = psi(reference, np.full(100, 5.0), bins=10, min_per_bin=10)
    assert empty_bins is not None and math.isfinite(empty_bins.value) and empty_bins.value > 1
    small = psi(reference, np.arange(0, 200, 10, dtype=float), bins=10, min_per_bin=10)
    assert small is not None and len(small.reference_share) == 2  # 20 queries: 2 bins, not 10
    mostly_zero = np.r_[np.zeros(180), np.linspace(0.1, 1, 20)]
    tied = psi(mostly_zero, mostly_zero, bins=10, min_per_bin=1)
    assert tied is not None and tied.value == pytest.approx(0.0)
    assert tied.reference_share[0] == pytest.approx(0.9)  # all the zeros share one bin
    assert psi([], [1.0]) is None


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    reference = samples(0, 1000)
    same = psi(reference, samples(1, 1000))
    shifted = psi(reference, samples(2, 1000, mean=1.0))
    assert same is not None and shifted is not None
    assert same.value < 0.05
    assert shifted.value > 0.5


def test_adwin_stays_quiet_on_a_stationary_stream_and_cuts_near_a_change() -> None:
    quiet = AdwinTracker()
    for position, value in enumerate(samples(0, 400) * 0.1 + 0.5, start=1):
        quiet.update(float(value), position)
    assert quiet.cuts == []

    tracker = AdwinTracker()
    stream = np.r_[samples(1, 200) * 0.1 + 0.5, samples(2, 200) * 0.1 + 0.2]
    for position, value in enumerate(stream, start=1):
        tracker.update(float(value), position)
    assert tracker.cuts, "ADWIN should cut a stream whose mean drops by three standard deviations"
    first = tracker.cuts[0]
    assert 190 <= first.position <= 230 and first.detected_at >= first.position
    assert first.mean_before == pytest.approx(0.5, abs=0.05)
    assert first.mean_after < 0.35
    assert tracker.update(math.nan, 401) is None


def test_normal_scores_are_standard_normal_for_the_reference_distribution() -> None:
    reference = samples(0, 500)
    scores = normal_scores(reference, samples(1, 2000))
    assert abs(scores.mean()) < 0.1 and abs(scores.std() - 1) < 0.1
    ties = normal_scores(np.zeros(99), np.array([0.0, 1.0]))
    assert ties[0] == pytest.approx(0.0) and ties[1] > 2


def correlated(seed: int, size: int, rho: float = 0.5, features: int = 3) -> np.ndarray:
    """``(size, features)`` standard normal rows with correlation ``rho`` between every pair of features."""
    covariance = np.full((features, features), rho) + (1 - rho) * np.eye(features)
    return np.random.default_rng(seed).multivariate_normal(np.zeros(features), covariance, size)


def first_alarm(
    scale: ScoreScale, stream: np.ndarray, slacks: float | tuple[float, ...], thresholds: np.ndarray | float
) -> int | None:
    """The first query after which any chart (each slack: every feature, then the combined score) is over its
    threshold."""
    slacks = (slacks,) if isinstance(slacks, float) else slacks
    width = stream.shape[1] + 1
    limits = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(slacks) * width,))
    cusums = [OneSidedCusum(slack, float(limit), float(limit))
              for slack, limit in zip(np.repeat(slacks, width), limits, strict=True)]
    for index, row in enumerate(scale.scores(stream), start=1):
        if any(cusum.update(float(z)) > cusum.threshold for cusum, z in zip(cusums, np.tile(row, len(slacks)),
                                                                              strict=True)):
            return index
    return None


def test_score_scale_signs_clips_and_combines_correlated_features() -> None:
    reference = correlated(0, 400, rho=0.9)
    scale = ScoreScale.fit(reference, [-1, 1, 1])
    scores = scale.scores(np.array([[-2.0, 2.0, 2.0], [50.0, 0.0, np.nan]]))
    assert scores[0, :3] == pytest.approx([2.0, 2.0, 2.0], abs=0.3)  # all three moved the watched way
    assert scores[1, 0] == -SCORE_CLIP and np.isnan(scores[1, 2])
    # the spread of the sum allows for the correlation: √(3 + 6·0.9) watched the same way, √(3 − 2·0.9) when
    # one feature is watched the other way
    same_way = ScoreScale.fit(reference, [1, 1, 1])
    assert same_way.combined_spread == pytest.approx(np.sqrt(8.4), rel=0.1)
    assert scale.combined_spread == pytest.approx(np.sqrt(1.2), rel=0.15)
    assert scores[0, 3] == pytest.approx(scores[0, :3].sum() / scale.combined_spread)


def test_joint_calibration_bounds_the_false_alarm_rate_of_the_whole_family() -> None:
    reference = correlated(0, 100)
    warning, drift = calibrate_joint_cusum(reference, [1, 1, 1], 0.5, (0.2, 0.02), horizon=200, simulations=400)
    assert warning.shape == (4,) and np.all(0 < warning) and np.all(warning < drift)
    scale = ScoreScale.fit(reference, [1, 1, 1])
    streams = [correlated(seed, 200) for seed in range(1, 121)]  # fresh in-control traffic, not the reference
    rate = np.mean([first_alarm(scale, stream, 0.5, warning) is not None for stream in streams])
    assert rate <= 0.3  # calibrated for 0.2, with the reference's own sampling error included
    longer = calibrate_joint_cusum(reference, [1, 1, 1], 0.5, (0.2,), horizon=800, simulations=400)[0]
    assert np.all(longer > warning)
    # three copies of one feature need lower thresholds than three unrelated features (no Bonferroni penalty)
    copies = np.repeat(reference[:, :1], 3, axis=1)
    assert np.all(calibrate_joint_cusum(copies, [1, 1, 1], 0.5, (0.2,), 200, simulations=400)[0][:3] < warning[:3])


def test_small_and_large_slack_charts_share_the_risk_and_the_large_one_catches_a_jump_sooner() -> None:
    reference = correlated(0, 100)
    slacks = (0.5, 1.5)
    warning, drift = calibrate_joint_cusum(reference, [1, 1, 1], slacks, (0.2, 0.01), horizon=200, simulations=400)
    assert warning.shape == (8,)
    assert np.all(drift[4:] < drift[:4])  # the large slack's charts rise less in control: lower thresholds
    scale = ScoreScale.fit(reference, [1, 1, 1])
    streams = [correlated(seed, 200) for seed in range(1, 121)]
    assert np.mean([first_alarm(scale, stream, slacks, warning) is not None for stream in streams]) <= 0.3
    only_small = calibrate_joint_cusum(reference, [1, 1, 1], 0.5, (0.01,), horizon=200, simulations=400)[0]
    jumps = [correlated(seed, 40) + 3.0 for seed in range(200, 220)]  # every query three σ off, the watched way
    both = [first_alarm(scale, jump, slacks, drift) for jump in jumps]
    small = [first_alarm(scale, jump, 0.5, only_small) for jump in jumps]
    assert None not in both and None not in small
    assert np.mean(both) < np.mean(small)


def test_a_gradual_shift_the_watched_way_is_caught_and_the_other_way_is_ignored() -> None:
    reference = correlated(0, 100)
    thresholds = calibrate_joint_cusum(reference, [-1, 1, 1], (0.5, 1.5), (0.01,), horizon=500, simulations=400)[0]
    scale = ScoreScale.fit(reference, [-1, 1, 1])
    ramp = np.minimum(np.arange(1, 101) / 30, 1.0)[:, None]  # the shift grows to 1.5 σ over 30 queries
    drifting = correlated(5, 100) + 1.5 * ramp * np.array([-1.0, 1.0, 1.0])
    caught = first_alarm(scale, drifting, (0.5, 1.5), thresholds)
    assert caught is not None and caught <= 30
    harmless = correlated(5, 100) + 1.5 * ramp * np.array([1.0, -1.0, -1.0])  # better scores, fewer unknowns
    assert first_alarm(scale, harmless, (0.5, 1.5), thresholds) is None
    quiet = OneSidedCusum(0.5, 1.0, 1.0)
    assert quiet.update(float("nan")) == 0.0 and not quiet.alarm and not quiet.warning


def test_mmd_permutation_test() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(60, 8))
    same = mmd_test(reference, rng.normal(size=(60, 8)), permutations=100)
    shifted = mmd_test(reference, rng.normal(0.7, 1.0, size=(60, 8)), permutations=100)
    assert same is not None and shifted is not None
    assert same.p_value > 0.05
    assert shifted.p_value < 0.02 and shifted.mmd2 > same.mmd2
    assert mmd_test(reference, np.zeros((0, 8))) is None
