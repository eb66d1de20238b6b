"""The typed, frozen config of each component: what indexing, search and drift take instead of the settings.

Plain values, no behaviour. :mod:`indexing.backends.configs` builds each of them from
:class:`~mlsearch.settings.Settings`: it is the one module below the CLI and the API that reads the settings.
The configs live here, at the bottom, so that every package can take them and that one module can build them
without importing a package above it. Each backend's own config is defined in that backend's module; the
configs below carry those as ``backend_configs`` (backend name → config; a backend not named takes its
defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlsearch.catalog import DEFAULT_BUILD_BACKENDS

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_ENCODER_BACKEND = "openvino"
DEFAULT_ENCODER_INT8 = True
"""The encoder when neither the settings nor an index choose one (``indexing.embedding.follow_index``)."""
DEFAULT_BATCH_TOKENS = 4096
"""Exported encoders: most padded tokens per inference call (0, 2048, 4096 and 8192 timed alike
within the noise of a loaded machine)."""
Correction = Literal["holm", "bh"]
"""A multiple-testing correction: Holm (family-wise error) or Benjamini-Hochberg (false discovery rate)."""
StoreText = Literal["off", "hashed", "full"]
"""What the query log keeps of a query's text."""
UntunedFusion = Literal["zscore", "minmax", "rrf"]
"""How hybrid fuses dense and BM25 (equal weights) on an index ``mlsearch tune`` has not tuned."""


@dataclass(frozen=True)
class EncoderConfig:
    """How to run an embedding model.

    Attributes:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (a GPU with the torch backend only).
        backend: ``torch`` (sentence-transformers), or ``openvino`` / ``onnx`` (the model exported once and
            cached in ``cache_dir``; see :mod:`indexing.export`). None: not chosen, the index's own when one is
            opened, else ``DEFAULT_ENCODER_BACKEND`` (resolved by ``indexing.embedding.follow_index``).
        int8: Quantize the exported model to int8 (``openvino`` and ``onnx`` only). None: not chosen (as
            ``backend``).
        cache_dir: Where exports are cached (``~/.cache/mlsearch/encoders`` when None).
        threads: Intra-op threads of OpenVINO or ONNX Runtime (0: the library's default, every core).
        processes: Torch backend: encode large batches in this many processes (0 or 1: in this process).
        batch_tokens: OpenVINO / ONNX Runtime: most padded tokens per inference call (0: only the batch size
            bounds a batch).
    """

    device: str = "cpu"
    backend: str | None = None
    int8: bool | None = None
    cache_dir: Path | None = None
    threads: int = 0
    processes: int = 0
    batch_tokens: int = DEFAULT_BATCH_TOKENS


@dataclass(frozen=True)
class BuildConfig:
    """How an index is built and updated: where, with which backends, in what chunks and batches.

    Attributes:
        corpus_dir: The corpus folder.
        index_dir: The index directory (a link to its current version).
        state_dir: The document store's folder (``<index>-state`` beside the index when None).
        model: The model name or path the settings give (its fine-tuning lineage goes into the manifest).
        backends: The backends built.
        backend_configs: Backend name → its config (a backend not here takes its defaults).
        batch_size: Texts per encoding batch.
        checkpoint_chunks: Chunks embedded between two checkpoints of a build.
        chunk_target_tokens: Target chunk length in model tokens.
        chunk_overlap_tokens: Tokens repeated from the previous chunk.
        chunk_max_tokens: Hard cap on a chunk (the model's ``max_seq_length`` when None; never above it).
        keep_versions: Index versions kept on disk after a swap.
        refit_delay_s: Quiet time after the last document write before backends that updates spliced
            approximately are fitted again.
    """

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("indexes/default")
    state_dir: Path | None = None
    model: str = DEFAULT_MODEL
    backends: tuple[str, ...] = DEFAULT_BUILD_BACKENDS
    backend_configs: Mapping[str, object] = field(default_factory=dict)
    batch_size: int = 32
    checkpoint_chunks: int = 1000
    chunk_target_tokens: int = 200
    chunk_overlap_tokens: int = 32
    chunk_max_tokens: int | None = None
    keep_versions: int = 2
    refit_delay_s: float = 2.0


@dataclass(frozen=True)
class FeedbackConfig:
    """One pseudo-relevance feedback setting of hybrid search (``MLSEARCH_PRF_*``).

    Attributes:
        docs: Feedback chunks: the top of the first fused list (0: feedback off).
        query_weight: Dense side: the original query vector's weight ``w`` against the feedback centroid's
            ``1 − w``.
        terms: BM25 side: expansion terms taken from the feedback chunks (0: the BM25 list is not refined).
        term_weight: BM25 side: the original query terms' share of the expanded query.
        keep_first_pass: Fuse the first-pass lists again beside the refined ones (each method twice, same
            weights), so that feedback re-ranks rather than replaces; otherwise only the refined lists are fused.

    Raises:
        ValueError: A negative count or a weight outside [0, 1].
    """

    docs: int = 0
    query_weight: float = 0.7
    terms: int = 10
    term_weight: float = 0.5
    keep_first_pass: bool = True

    def __post_init__(self) -> None:
        if self.docs < 0 or self.terms < 0:
            raise ValueError(f"feedback docs and terms must be >= 0, got {self.docs} and {self.terms}")
        if not (0.0 <= self.query_weight <= 1.0 and 0.0 <= self.term_weight <= 1.0):
            raise ValueError(f"feedback weights must lie in [0, 1], got {self.query_weight} and {self.term_weight}")

    @property
    def enabled(self) -> bool:
        """Whether feedback changes anything (at least one feedback chunk)."""
        return self.docs > 0

    def label(self) -> str:
        """A short name, e.g. ``prf(5 chunks, dense 0.7, bm25 10 terms 0.5)``."""
        if not self.enabled:
            return "prf off"
        keyword = f"bm25 {self.terms} terms {self.term_weight:g}" if self.terms else "bm25 unchanged"
        kept = ", first pass kept" if self.keep_first_pass else ""
        return f"prf({self.docs} chunks, dense {self.query_weight:g}, {keyword}{kept})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


DEFAULT_FEEDBACK = FeedbackConfig(docs=10, query_weight=0.7, terms=10, term_weight=0.5, keep_first_pass=True)
"""Hybrid's pseudo-relevance feedback by default (``MLSEARCH_PRF_*``): the top 10 fused chunks, the query vector
weighing 0.7, 10 RM3 terms at 0.5, the first-pass lists fused beside the refined ones (chosen on Cranfield,
``builtin`` and an answer-span set together; see the README). ``FeedbackConfig()`` is feedback off."""


@dataclass(frozen=True)
class SmoothingConfig:
    """Score smoothing of BM25 over the chunks' nearest-neighbour graph (``MLSEARCH_SMOOTHING_*``; see
    :mod:`search.smoothing`).

    Attributes:
        weight: The neighbours' share of a chunk's score (0: smoothing off).
        neighbours: Nearest chunks (by embedding) whose scores a chunk takes in.
        max_chunks: Largest index whose graph a searcher computes itself (exact k-NN, once per index version,
            when a search first needs it) when the version has no saved graph (:mod:`indexing.neighbours`; a build
            saves one at any size); a larger index without one is not smoothed.

    Raises:
        ValueError: A weight outside [0, 1), or fewer than one neighbour.
    """

    weight: float = 0.0
    neighbours: int = 3
    max_chunks: int = 20_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight < 1.0:
            raise ValueError(f"the smoothing weight must lie in [0, 1), got {self.weight}")
        if self.neighbours < 1 or self.max_chunks < 0:
            raise ValueError(f"smoothing needs at least one neighbour and max_chunks >= 0, got {self.neighbours} "
                             f"and {self.max_chunks}")

    @property
    def enabled(self) -> bool:
        """Whether smoothing changes anything."""
        return self.weight > 0


DEFAULT_SMOOTHING = SmoothingConfig(weight=0.4, neighbours=3, max_chunks=20_000)
"""BM25 smoothing by default: each chunk's score takes in 0.4 of the mean of its 3 nearest chunks' (chosen on
Cranfield, ``builtin`` and an answer-span set together; see the README). ``SmoothingConfig()`` is smoothing off."""


@dataclass(frozen=True)
class SearchConfig:
    """What a searcher needs to know: fusion, the query cache, the model's device and each backend's config.

    Attributes:
        rrf_k: Reciprocal rank fusion constant.
        fusion: Hybrid's fusion on an index without a tuned one (see :func:`search.fusion.untuned_fusion`).
        query_cache_size: Query embeddings kept in the LRU cache (0: none).
        encoder: How a lazily loaded model runs (device, torch or an exported model, threads).
        reranker: The cross-encoder of ``rerank`` (the manifest's when None).
        rerank_top_n: Results the reranker rescores.
        backends: Backend name → its config (used when that backend is loaded; defaults for one not here).
        feedback: Pseudo-relevance feedback of hybrid search (:mod:`search.feedback`; off when ``docs`` is 0).
        smoothing: Score smoothing of the methods the catalog marks ``smoothed`` (:mod:`search.smoothing`).
    """

    rrf_k: int = 60
    fusion: UntunedFusion = "zscore"
    query_cache_size: int = 1024
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    reranker: Path | None = None
    rerank_top_n: int = 20
    backends: Mapping[str, object] = field(default_factory=dict)
    feedback: FeedbackConfig = DEFAULT_FEEDBACK
    smoothing: SmoothingConfig = DEFAULT_SMOOTHING


@dataclass(frozen=True)
class DriftConfig:
    """Sizes and thresholds of drift monitoring (see :class:`mlsearch.settings.Settings` ``drift_*``)."""

    reference_size: int = 200
    window: int = 200
    min_window: int = 30
    psi_warning: float = 0.1
    psi_drift: float = 0.25
    psi_bins: int = 10
    ks_alpha: float = 0.01
    ks_correction: Correction = "holm"
    components: int = 2
    sequential_alpha: float = 0.01
    warning_alpha: float = 0.05
    cusum_slack: float = 0.5
    cusum_fast_slack: float = 1.5
    adwin_delta: float = 0.002
    psi_confirms: bool = False
    ks_warns: bool = False
    mmd: bool = False
    mmd_permutations: int = 200
    replay: int = 2000


@dataclass(frozen=True)
class DriftServiceConfig:
    """A service's drift monitoring: where its log lives, what the log keeps, the reference and the monitor.

    Attributes:
        state_dir: The service's state directory (the drift log goes in its ``drift/`` folder).
        monitor: The monitor's sizes and thresholds.
        reference_file: Reference queries (one a line); the first answered queries when None.
        log_max_rows: Rows the query log keeps.
        log_retention_days: Logged queries older than this are deleted (0: kept until ``log_max_rows``).
        store_text: What the log keeps of a query's text.
    """

    state_dir: Path
    monitor: DriftConfig = field(default_factory=DriftConfig)
    reference_file: Path | None = None
    log_max_rows: int = 100_000
    log_retention_days: float = 30.0
    store_text: StoreText = "off"
