"""Scale benchmark: how build time, memory, disk, start-up and query latency grow with the number of chunks.

Run: ``.venv/bin/python -m bench.scale --sizes 10000,100000,1000000 [--encoder fake|real] [--json OUT]``

For each size it writes a synthetic corpus of about that many chunks into a temporary folder: Markdown files
of 50 sections, each section a handful of sentences resampled at run time from ``corpus/`` and the Cranfield
collection in ``../shared/datasets`` (nothing is copied into the project), neighbouring sentences of one
source kept together so that documents have topics. Then, each step in a fresh process so that its peak RSS
is its own:

1. **build**: ``build_index`` over the folder (``--backends``, FAISS ``Flat`` as the exact reference), with
   the fake encoder by default (a hashed bag of words projected to 384 dimensions: fast and deterministic,
   so that 1M chunks fit on 2 cores), or the real model with ``--encoder real``;
2. **variants**: every approximate FAISS variant (``--variants``: ``hnsw`` HNSW32, ``ivf`` IVF with
   4·√n lists and nprobe n/16 of them, ``int8`` SQ8 and ``hnsw-int8`` HNSW32_SQ8 + exact rescoring,
   ``binary`` sign bits + exact rescoring; ``hnsw`` uses the default ``faiss_hnsw_m`` and
   ``faiss_hnsw_ef_construction``) built from the chunk store, timed, saved, then searched one query at a time
   (encoding excluded) beside the published backends; recall@10 against the exact ``Flat`` results. Every HNSW
   graph is searched at each ``--ef-search`` value, and ``--hnsw-grid M:efConstruction,...`` builds more graphs
   (``faiss-hnswM-efcE``) to choose those defaults. When BM25 is built, hybrid search (``Searcher.retrieve``,
   the index's fusion, query embeddings cached beforehand) is timed over exact FAISS and each variant, with
   pseudo-relevance feedback off (``hybrid@<backend>``) and with the default feedback (``hybrid-prf@<backend>``);
3. **start-up**: a fresh process opens the index and loads every backend (as the service does), one query each;
4. **update**: a fresh process gives ``--update-docs`` documents spread over the index new text (as
   ``PUT /documents`` does) and publishes the update: its seconds per stage and its peak RSS.

It prints one growth table per measure and writes
``{"sizes": [{"chunks", "stages", "peak_rss_mb", "disk_mb", "startup_s", "query_ms", "recall_at_10"}]}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SECTIONS_PER_DOC = 50
DIMENSION = 384
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
VARIANTS = {
    "hnsw": {"faiss_factory": "HNSW"},
    "ivf": {"faiss_factory": "IVF{nlist},Flat"},
    "int8": {"faiss_factory": "Flat", "faiss_quantization": "int8"},
    "hnsw-int8": {"faiss_factory": "HNSW", "faiss_quantization": "int8"},
    "binary": {"faiss_factory": "Flat", "faiss_quantization": "binary"},
}


class HashedProjectionEncoder:
    """A fast fake embedding model: a hashed bag of words (sublinear counts) times a fixed random matrix.

    Texts that share words get similar unit vectors, as with a real model, at thousands of texts per second.
    One token is one word or punctuation mark, plus two special tokens, as a BERT tokenizer counts.
    """

    def __init__(self, dimension: int = DIMENSION, features: int = 1 << 15) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.name = "fake-hashed-projection"
        self.weights_hash = hashlib.sha256(f"{self.name}-{dimension}-{features}".encode()).hexdigest()
        self.dimension = dimension
        self.max_seq_length = 256
        self.normalized = True
        self._vectorizer = HashingVectorizer(
            n_features=features, alternate_sign=False, norm=None, dtype=np.float32, stop_words="english"
        )
        self._projection = np.random.default_rng(0).standard_normal((features, dimension)).astype(np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Words and punctuation marks, plus two special tokens."""
        return [len(_TOKEN.findall(text)) + 2 for text in texts]

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Unit vectors of the hashed, log-scaled word counts, projected."""
        counts = self._vectorizer.transform(list(texts))
        counts.data = np.log1p(counts.data)
        vectors = np.asarray(counts @ self._projection, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms


def sentence_pool(datasets: Path | None = None) -> list[str]:
    """Sentences of 6 to 40 words from the shipped corpus and the Cranfield collection, in source order."""
    pool: list[str] = []
    for path in sorted((ROOT / "corpus").glob("*.md")):
        text = re.sub(r"```.*?```", " ", path.read_text(), flags=re.DOTALL)
        for line in text.splitlines():
            if line.startswith(("#", "|", "---", "title:", "tags:")):
                continue
            pool.extend(_SENTENCE.split(line.strip()))
    cranfield = (datasets or SHARED / "datasets") / "cranfield" / "corpus.jsonl"
    if cranfield.is_file():
        with cranfield.open() as handle:
            for line in handle:
                pool.extend(_SENTENCE.split(str(json.loads(line).get("text", ""))))
    return [s.strip() for s in pool if 6 <= len(s.split()) <= 40 and "`" not in s]


def synthetic_documents(chunks: int, pool: Sequence[str], seed: int = 0) -> Iterator[tuple[str, list[str]]]:
    """``(title, sections)`` of documents of ``SECTIONS_PER_DOC`` one-chunk sections until ``chunks`` sections
    exist: each section 3 to 5 sentences drawn from a window of 600 neighbouring sentences of the pool, so that a
    document has a topic."""
    rng = random.Random(seed)
    remaining = chunks
    for _ in range(math.ceil(chunks / SECTIONS_PER_DOC)):
        anchor = rng.randrange(len(pool))
        window = pool[max(0, anchor - 300): anchor + 300]
        sections = [" ".join(rng.choice(window) for _ in range(rng.randint(3, 5)))
                    for _ in range(min(SECTIONS_PER_DOC, remaining))]
        remaining -= len(sections)
        yield " ".join(window[0].split()[:6]).strip(" .,;:"), sections


def write_corpus(folder: Path, chunks: int, pool: Sequence[str], seed: int = 0) -> int:
    """Write the :func:`synthetic_documents` as Markdown files (one section a heading).

    Returns:
        The number of documents written.
    """
    documents = 0
    for d, (title, sections) in enumerate(synthetic_documents(chunks, pool, seed)):
        subfolder = folder / f"part{d // 1000:04d}"
        subfolder.mkdir(parents=True, exist_ok=True)
        (subfolder / f"doc{d:07d}.md").write_text(markdown(title, sections))
        documents += 1
    return documents


def markdown(title: str, sections: Sequence[str]) -> str:
    """A synthetic document as Markdown: the title in front matter, one heading per section."""
    body = "\n".join(f"## Section {s + 1}\n\n{text}\n" for s, text in enumerate(sections))
    return f"---\ntitle: {json.dumps(title)}\n---\n\n" + body


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_encoder(kind: str) -> Any:
    """The fake encoder, or the bundled real model."""
    if kind == "real":
        from indexing.embedding import load_encoder

        return load_encoder("all-MiniLM-L6-v2")
    return HashedProjectionEncoder()


def _settings(index_dir: Path, **overrides: Any) -> Any:
    from mlsearch.settings import Settings

    return Settings(index_dir=index_dir, **overrides)


def run_build(work: Path, size: int, encoder_kind: str, backends: list[str], datasets: Path) -> dict[str, Any]:
    """Step 1 (own process): write the corpus, build the index, report stages and peak RSS."""
    from indexing.backends.configs import build_config
    from indexing.build import build_index

    started = time.perf_counter()
    documents = write_corpus(work / "corpus", size, sentence_pool(datasets))
    generated = time.perf_counter() - started
    settings = _settings(work / "index")
    summary = build_index(build_config(settings), make_encoder(encoder_kind), corpus_dir=work / "corpus",
                          backends=backends)
    return {"chunks": summary.chunks, "documents": documents, "generate_s": round(generated, 2),
            "stages": summary.timings, "build_s": summary.seconds, "peak_rss_mb": round(peak_rss_mb())}


def _latencies(search: Callable[[int], Any], n: int) -> dict[str, float]:
    search(0)  # warm up
    times = []
    for i in range(n):
        started = time.perf_counter()
        search(i)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": round(statistics.median(times), 3), "p95": round(float(np.percentile(times, 95)), 3)}


def _keyword_search(index: Any, texts: Sequence[str]) -> Callable[[int], Any]:
    return lambda i: index.search(texts[i], 10)


def _hybrid_searcher(work: Path, encoder: Any, texts: Sequence[str], vectors: np.ndarray,
                     dense: Any = None) -> Any:
    """A searcher of the built index whose query embeddings are cached already (encoding excluded).

    ``dense``, when given, is a loaded FAISS variant that answers in place of the published exact index.
    """
    from indexing.backends.configs import search_config
    from search.searcher import Searcher

    settings = _settings(work / "index", query_cache_size=max(1024, len(texts)))
    searcher = Searcher.open(work / "index", search_config(settings), encoder=encoder)
    known = dict(zip(texts, vectors, strict=True))
    searcher.cache.get_or_compute_many(texts, lambda missing: [known[t] for t in missing])
    if dense is not None:
        searcher._backends["faiss"] = dense  # the variant is not published: it stands in for the exact index
    return searcher


def _hybrid_latencies(searcher: Any, texts: Sequence[str], queries: int) -> dict[str, dict[str, float]]:
    """Hybrid retrieval p50/p95 of the top 10, with feedback off and with the default feedback."""
    from mlsearch.configs import DEFAULT_FEEDBACK, FeedbackConfig

    return {
        method: _latencies(lambda i: searcher.retrieve(texts[i], 10, "hybrid", feedback=prf), queries)  # noqa: B023
        for method, prf in (("hybrid", FeedbackConfig()), ("hybrid-prf", DEFAULT_FEEDBACK))
    }


def _disk_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def run_variants(
    work: Path, encoder_kind: str, backends: list[str], variants: list[str], queries: int, datasets: Path,
    grid: Sequence[tuple[int, int]] = (), ef_search: Sequence[int] = (),
) -> dict[str, Any]:
    """Step 2 (own process): build approximate FAISS variants from the store; latency, recall, disk."""
    import faiss
    from threadpoolctl import threadpool_limits

    from indexing.backends.configs import config_of, keyword_config, vector_config
    from indexing.backends.faiss_index import FaissConfig, FaissIndex
    from indexing.backends.registry import keyword_backend, vector_backend
    from indexing.build import BACKEND_BATCH
    from indexing.layout import current_version_dir
    from indexing.store import ChunkStore

    directory = current_version_dir(work / "index")
    store = ChunkStore(directory / ChunkStore.FILE)
    n = len(store)
    rng = random.Random(1)
    texts = [" ".join(s.split()[:8]) for s in rng.sample(sentence_pool(datasets), queries)]
    encoder = make_encoder(encoder_kind)
    vectors = encoder.encode(texts)
    settings = _settings(work / "index")
    out: dict[str, Any] = {"stages": {}, "disk_mb": {"chunks.sqlite": _disk_mb(directory / ChunkStore.FILE)},
                           "query_ms": {}, "recall_at_10": {}}

    exact = FaissIndex.load(directory / "faiss", config_of(FaissConfig, settings))
    truth = exact.search(vectors, 10)[1]
    threads = faiss.omp_get_max_threads()
    # latency: one thread per query (FAISS's OpenMP and NumPy's BLAS alike), as the service runs one request
    # per thread; on a shared machine, more threads per query mostly wait for each other
    faiss.omp_set_num_threads(1)
    threadpool_limits(1)

    def measure_hybrid(name: str, dense: Any = None) -> None:
        if "bm25" not in backends:
            return
        searcher = _hybrid_searcher(work, encoder, texts, vectors, dense)
        for method, latency in _hybrid_latencies(searcher, texts, queries).items():
            out["query_ms"][f"{method}@{name}"] = latency
            print(f"[{n}] {method}@{name}: p50 {latency['p50']} ms, p95 {latency['p95']} ms", file=sys.stderr,
                  flush=True)
        searcher.close()

    def measure(name: str, index: Any) -> None:
        out["query_ms"][f"dense@{name}"] = _latencies(lambda i: index.search(vectors[i : i + 1], 10), queries)
        found = index.search(vectors, 10)[1]
        out["recall_at_10"][name] = round(float(np.mean(
            [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])), 4)
        print(f"[{n}] {name}: recall@10 {out['recall_at_10'][name]}, p50 {out['query_ms'][f'dense@{name}']['p50']} ms",
              file=sys.stderr, flush=True)

    for name in backends:
        out["disk_mb"][name] = _disk_mb(directory / name)
        if name in ("lsi", "bm25"):
            keyword = keyword_backend(name).load(directory / name, keyword_config(name, settings))
            out["query_ms"][name] = _latencies(_keyword_search(keyword, texts), queries)
        elif name == "faiss":
            out["query_ms"]["dense@faiss"] = _latencies(lambda i: exact.search(vectors[i : i + 1], 10), queries)
        else:
            measure(name, vector_backend(name).load(directory / name, vector_config(name, settings)))
    measure_hybrid("faiss")
    builds: list[tuple[str, dict[str, Any]]] = [(v, dict(VARIANTS[v])) for v in variants]
    builds += [(f"hnsw{m}-efc{efc}", {"faiss_factory": "HNSW", "faiss_hnsw_m": m, "faiss_hnsw_ef_construction": efc})
               for m, efc in grid]
    for variant, overrides in builds:
        nlist = max(1, int(4 * math.sqrt(n)))
        overrides["faiss_factory"] = overrides["faiss_factory"].format(nlist=nlist)
        overrides["faiss_nprobe"] = max(16, nlist // 16)
        variant_settings = _settings(work / "index", **overrides)
        started = time.perf_counter()
        faiss.omp_set_num_threads(threads)  # building uses every core
        index = FaissIndex(store_dimension(store), config_of(FaissConfig, variant_settings))
        for _, batch in store.embedding_batches(index.dimension, BACKEND_BATCH):
            index.add(batch)
        target = work / f"faiss-{variant}"
        index.save(target)
        out["stages"][f"backend_faiss-{variant}"] = round(time.perf_counter() - started, 3)
        print(f"[{n}] built faiss-{variant} in {out['stages'][f'backend_faiss-{variant}']:.0f}s", file=sys.stderr,
              flush=True)
        del index
        faiss.omp_set_num_threads(1)
        out["disk_mb"][f"faiss-{variant}"] = _disk_mb(target)
        loaded = FaissIndex.load(target, config_of(FaissConfig, variant_settings))
        measure(f"faiss-{variant}", loaded)
        if variant in VARIANTS:  # the graphs of --hnsw-grid are compared by recall and dense latency only
            measure_hybrid(f"faiss-{variant}", loaded)
        if variant.startswith("hnsw"):  # the same graph searched wider or narrower: recall against latency
            default_ef = getattr(faiss.downcast_index(loaded._index), "hnsw").efSearch  # noqa: B009
            for ef in ef_search:
                if ef != default_ef:
                    getattr(faiss.downcast_index(loaded._index), "hnsw").efSearch = ef  # noqa: B009
                    measure(f"faiss-{variant}-ef{ef}", loaded)
    store.close()
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def store_dimension(store: Any) -> int:
    """The embedding dimension of a chunk store (from its first row)."""
    row = store._db.execute("SELECT length(embedding) FROM chunks LIMIT 1").fetchone()
    return int(row[0]) // 4


def run_startup(work: Path, encoder_kind: str, backends: list[str]) -> dict[str, Any]:
    """Step 3 (own process): open the index as the service does and answer one query with every backend."""
    from indexing.backends.configs import search_config
    from search.searcher import Searcher

    encoder = make_encoder(encoder_kind)
    started = time.perf_counter()
    searcher = Searcher.open(work / "index", search_config(_settings(work / "index")), encoder=encoder)
    for name in backends:
        if name in ("lsi", "bm25"):
            searcher.search("wing lift at high speed", method=name, k=10)
        else:
            searcher.search("wing lift at high speed", method="dense", backend=name, k=10)
    return {"startup_s": round(time.perf_counter() - started, 3), "startup_rss_mb": round(peak_rss_mb())}


def run_update(work: Path, encoder_kind: str, docs: int, datasets: Path, seed: int = 0) -> dict[str, Any]:
    """Step 4 (own process): a document update that gives ``docs`` documents spread over the index new text, as
    ``PUT /documents`` does; its time, stages and the process's peak RSS (which includes opening the index).
    Another ``seed`` picks the documents next to them and other text."""
    from indexing.backends.configs import build_config
    from indexing.layout import current_version_dir
    from indexing.loaders.markdown import load_markdown_text
    from indexing.store import ChunkStore
    from indexing.updates import DocumentUpdater

    settings = _settings(work / "index")
    store = ChunkStore(current_version_dir(settings.index_dir) / ChunkStore.FILE)
    try:
        doc_ids = sorted(store.document_spans())
    finally:
        store.close()
    spread = np.linspace(0, len(doc_ids) - 1, min(docs, len(doc_ids))).astype(int)
    chosen = [doc_ids[(i + seed) % len(doc_ids)] for i in spread]
    texts = synthetic_documents(len(chosen) * SECTIONS_PER_DOC, sentence_pool(datasets), seed=len(doc_ids) + seed)
    encoder = make_encoder(encoder_kind)
    rss_before = peak_rss_mb()
    updater = DocumentUpdater(build_config(settings), lambda: encoder, coalesce_s=3600)
    try:
        for doc_id, (title, sections) in zip(chosen, texts, strict=False):
            updater.put(load_markdown_text(markdown(title, sections), f"{doc_id}.md", doc_id).document)
        summary = updater.run_pending()
    finally:
        updater.close()
    if summary is None:
        raise RuntimeError("the update published nothing")
    return {"update_s": summary.seconds, "update_stages": summary.timings, "update_embedded": summary.embedded,
            "update_peak_rss_mb": round(peak_rss_mb()), "update_rss_before_mb": round(rss_before)}


def _child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one step in a fresh process (so that its peak RSS is its own) and return its result."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(target, args)


def measure_size(size: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Every step for one size; the work folder is removed afterwards unless ``--keep``."""
    work = root / f"scale-{size}"
    kept = work / "build.json"
    if args.reuse and kept.is_file():
        built = json.loads(kept.read_text())
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        built = None
    try:
        if built is None:
            built = _child(run_build, work, size, args.encoder, args.backends, args.datasets)
            kept.write_text(json.dumps(built))
        print(f"[{size}] built {built['chunks']} chunks in {built['build_s']:.0f}s: {built['stages']}, peak RSS "
              f"{built['peak_rss_mb']} MiB", file=sys.stderr, flush=True)
        variants = _child(run_variants, work, args.encoder, args.backends, args.variants, args.queries,
                          args.datasets, args.hnsw_grid, args.ef_search)
        startup = _child(run_startup, work, args.encoder, args.backends)
        update = _child(run_update, work, args.encoder, args.update_docs, args.datasets) if args.update_docs else {}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "chunks": built["chunks"], "documents": built["documents"], "encoder": args.encoder,
        "stages": {**built["stages"], **variants["stages"]}, "build_s": built["build_s"],
        "generate_s": built["generate_s"], "peak_rss_mb": built["peak_rss_mb"],
        "measure_peak_rss_mb": variants["peak_rss_mb"], "disk_mb": variants["disk_mb"],
        "startup_s": startup["startup_s"], "startup_rss_mb": startup["startup_rss_mb"],
        "query_ms": variants["query_ms"], "recall_at_10": variants["recall_at_10"], **update,
    }


def print_tables(results: list[dict[str, Any]]) -> None:
    """One growth table per measure: a row per stage, backend or method, a column per size."""
    header = f"{'':28}" + "".join(f"{r['chunks']:>14,}" for r in results)

    def table(title: str, rows: dict[str, list[Any]], fmt: str) -> None:
        print(f"\n{title}\n{header}")
        for name, values in rows.items():
            print(f"{name:28}" + "".join(f"{v:>14{fmt}}" if v is not None else f"{'-':>14}" for v in values))

    def collect(key: str, sub: str | None = None) -> dict[str, list[Any]]:
        names: list[str] = []
        for r in results:
            names += [n for n in r.get(key, {}) if n not in names]
        return {n: [(r.get(key, {}).get(n) or {}).get(sub) if sub else r.get(key, {}).get(n) for r in results]
                for n in names}

    stages = collect("stages")
    stages["build (total)"] = [r["build_s"] for r in results]
    table("seconds per stage", stages, ".1f")
    table("memory (MiB)", {"build peak RSS": [r["peak_rss_mb"] for r in results],
                           "service RSS after start-up": [r["startup_rss_mb"] for r in results],
                           "update peak RSS": [r.get("update_peak_rss_mb") for r in results]}, ".0f")
    updates = {"update (total)": [r.get("update_s") for r in results]}
    updates.update(collect("update_stages"))
    table("document update, seconds per stage", updates, ".2f")
    table("disk (MiB)", collect("disk_mb"), ".1f")
    table("service start-up (s)", {"open + first query each": [r["startup_s"] for r in results]}, ".2f")
    table("query p50 (ms, encoding excluded)", collect("query_ms", "p50"), ".2f")
    table("query p95 (ms, encoding excluded)", collect("query_ms", "p95"), ".2f")
    table("recall@10 vs exact (Flat)", collect("recall_at_10"), ".3f")
    if len(results) > 1:
        first, last = results[-2], results[-1]
        ratio = last["build_s"] / first["build_s"]
        print(f"\nbuild time {first['chunks']:,} -> {last['chunks']:,} chunks: x{ratio:.1f} "
              f"for x{last['chunks'] / first['chunks']:.1f} chunks")


def main() -> None:
    """Parse the arguments, measure each size, print tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="Comma-separated chunk counts.")
    parser.add_argument("--encoder", choices=["fake", "real"], default="fake")
    parser.add_argument("--backends", default="faiss,annoy,lsi,bm25", help="Backends of the build (faiss first).")
    parser.add_argument("--variants", default="hnsw,ivf,int8,hnsw-int8,binary", help="FAISS variants to build.")
    parser.add_argument("--hnsw-grid", default="", help="More HNSW graphs to build, as M:efConstruction,...")
    parser.add_argument("--ef-search", default="64,128,256,512", 
                        help="efSearch values every HNSW graph is searched at.")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--update-docs", type=int, default=10,
                        help="Documents a document update gives new text after the other steps (0: no update).")
    parser.add_argument("--datasets", type=Path, default=SHARED / "datasets",
                        help="The shared datasets folder (Cranfield sentences); ../shared/datasets by default.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where corpora and indexes go (a temp dir).")
    parser.add_argument("--keep", action="store_true", help="Keep each size's corpus and index.")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse a kept build of the same size in --workdir (measure the variants again only).")
    parser.add_argument("--json", type=Path, default=None, dest="json_out")
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "faiss" not in args.backends:
        parser.error("--backends must include faiss (the exact reference for recall)")
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; valid: {', '.join(VARIANTS)}")
    try:
        args.hnsw_grid = [tuple(int(x) for x in pair.split(":")) for pair in args.hnsw_grid.split(",") if pair]
        args.ef_search = [int(x) for x in args.ef_search.split(",") if x]
    except ValueError:
        parser.error("--hnsw-grid takes M:efConstruction pairs and --ef-search integers")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mlsearch-scale-"))
    pool = sentence_pool(args.datasets)
    print(f"sentence pool: {len(pool):,} sentences from corpus/ and {args.datasets / 'cranfield'}"
          f"{'' if (args.datasets / 'cranfield').is_dir() else ' (missing: corpus/ only)'}", file=sys.stderr)
    results = []
    for size in sizes:
        results.append(measure_size(size, args, root))
        if args.json_out:  # written after every size, so that a long run keeps what finished
            args.json_out.write_text(json.dumps({"sizes": results}, indent=2))
    print_tables(results)


if __name__ == "__main__":
    main()
