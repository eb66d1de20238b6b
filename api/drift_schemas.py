"""Response bodies of the drift endpoints (``GET /drift``, ``POST /admin/drift/reset``).

They describe :meth:`drift.monitor.DriftStatus.to_dict` for the OpenAPI document. Each model keeps keys it does
not name (``extra="allow"``), so a field that the drift monitor adds reaches the client before it is named here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from drift.monitor import DriftStatus

_OPEN = ConfigDict(extra="allow")


class FeatureDriftOut(BaseModel):
    """How one feature compares between the reference and the window (null: not measured yet)."""

    model_config = _OPEN

    description: str = Field(description="What the feature measures.")
    reference_mean: float | None = None
    window_mean: float | None = None
    ks_statistic: float | None = Field(default=None, description="Two-sample Kolmogorov–Smirnov statistic.")
    ks_p: float | None = Field(default=None, description="KS p-value.")
    ks_p_adjusted: float | None = Field(default=None, description="KS p-value after the multiple-testing correction.")
    psi: float | None = Field(default=None, description="Population stability index, window vs reference.")
    psi_bins: int | None = None
    adwin_change: bool = Field(default=False, description="Whether ADWIN cut the stream inside the window.")
    adwin_cut_queries_ago: int | None = None
    cusum: float | None = Field(default=None, description="The one-sided sequential test's statistic.")
    cusum_threshold: float | None = Field(default=None, description="The drift threshold.")
    cusum_warning_threshold: float | None = Field(default=None, description="The warning threshold.")
    cusum_alarm: bool = Field(default=False, description="Whether the sequential test is above its drift threshold.")
    cusum_warning: bool = Field(default=False, description="Whether it is above its warning threshold.")
    level: str = Field(default="ok", description="ok, warning or drift.")


class MultivariateOut(BaseModel):
    """The embedding-level test (empty when it did not run)."""

    model_config = _OPEN

    test: str | None = Field(default=None, description="mmd: a permutation test on the query embeddings.")
    mmd2: float | None = None
    p: float | None = None
    permutations: int | None = None
    alarm: bool | None = None


class ChartOut(BaseModel):
    """One CUSUM chart of the family: its statistic, slack and thresholds."""

    model_config = _OPEN

    statistic: float | None = None
    slack: float | None = None
    warning_threshold: float | None = None
    drift_threshold: float | None = None


class SequentialOut(BaseModel):
    """The CUSUM on the combined per-query score (the chart of the two slacks nearest its thresholds) and every
    chart of the family (empty before the reference is complete)."""

    model_config = _OPEN

    features: list[str] = Field(default_factory=list, description="The features whose scores are combined.")
    combined: float | None = Field(default=None, description="The combined score's CUSUM statistic.")
    warning_threshold: float | None = None
    drift_threshold: float | None = None
    slack: float | None = Field(default=None, description="Allowance per query, in standard deviations.")
    slacks: list[float] = Field(default_factory=list, description="The slacks of the family's chart sets.")
    charts: dict[str, ChartOut] = Field(
        default_factory=dict, description="Every chart: a feature or `combined`, `@<slack>` for the large slack."
    )
    warning_alpha: float | None = Field(default=None, description="In-domain warning probability over horizon.")
    drift_alpha: float | None = Field(default=None, description="In-domain drift probability over horizon.")
    horizon: int | None = Field(default=None, description="Queries the probabilities cover (ten windows).")


class ReferenceOut(BaseModel):
    """Where the reference came from (empty while it is being collected)."""

    model_config = _OPEN

    source: str | None = Field(default=None, description="queries (the first answered) or file:<path>.")
    created_at: float | None = Field(default=None, description="Unix time it was frozen.")
    size: int | None = None
    last_id: int | None = Field(default=None, description="The log row id when it was frozen.")
    model: str | None = Field(default=None, description="The embedding model that measured it.")
    digest: str | None = Field(default=None, description="sha256 of the reference file.")
    dimension: int | None = None


class QueryLogOut(BaseModel):
    """The query log that feeds the monitor."""

    model_config = _OPEN

    path: str | None = None
    rows: int | None = Field(default=None, description="Rows held (null when the log cannot be read).")
    max_rows: int | None = None
    retention_days: float | None = None
    text_mode: str | None = Field(default=None, description="What of a query's text is stored.")
    written: int | None = None
    dropped: int | None = None
    failed: int | None = None
    last_error: str | None = None
    moved_aside: str | None = Field(default=None, description="Where an unreadable log was moved.")


class DriftStatusOut(BaseModel):
    """The answer of ``GET /drift`` and ``POST /admin/drift/reset``."""

    model_config = _OPEN

    status: str = Field(description="warming_up, ok, warning or drift (the worst level over the features).")
    drift: bool = Field(description="Whether the status is drift.")
    reference_size: int = Field(description="Queries in the reference.")
    window_size: int = Field(description="Queries in the current window.")
    features: dict[str, FeatureDriftOut] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list, description="What moved, one line each.")
    detectors: dict[str, bool] = Field(default_factory=dict, description="Which detectors fire.")
    multivariate: MultivariateOut = Field(default_factory=MultivariateOut)
    sequential: SequentialOut = Field(default_factory=SequentialOut)
    reference: ReferenceOut = Field(default_factory=ReferenceOut)
    queries_since_reference: int = 0
    log: QueryLogOut = Field(default_factory=QueryLogOut)

    @classmethod
    def of(cls, status: DriftStatus) -> DriftStatusOut:
        """From the monitor's status."""
        return cls.model_validate(status.to_dict())
