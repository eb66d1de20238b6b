"""Encoder backends compared in one run: query latency, passage throughput, index build time and nDCG@10.

Run: ``.venv/bin/python -m bench.encoders [--backends torch,openvino,openvino-int8,onnx] [--threads 1]
[--datasets builtin,../shared/datasets/cranfield] [--json OUT]``

Every backend runs the same model (all-MiniLM-L6-v2 by default) with the same number of threads
(``torch.set_num_threads``, OpenVINO's ``INFERENCE_NUM_THREADS``, ONNX Runtime's ``intra_op_num_threads``).
For each it prints: query-encoding p50 and p95 (``encode([query])``, batch 1, over the built-in queries), passage
throughput (the chunks of ``corpus/``, batch 32: torch sorts them by characters, the exported backends by tokens
with at most ``MLSEARCH_ENCODER_BATCH_TOKENS`` padded tokens a call; the share of padding each order leaves is
printed), the cosine of its passage embeddings to torch's (mean and least), the seconds ``build_index``
takes over ``corpus/`` (load, chunk, embed, FAISS, Annoy, LSI, BM25, store, swap; model loading and export
excluded), and dense nDCG@10 on each dataset through the evaluation runner, each backend over an index it built
itself. Exports are made once and cached (``--cache-dir``); their time is printed.

Goals: the best backend's query p50 <= 0.3x torch, throughput >= 4x torch, nDCG@10 within 0.005 of torch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.load import load_queries
from evaluation.datasets import load_dataset
from evaluation.indexes import prepare_index
from evaluation.runner import evaluate
from indexing.backends.configs import build_config, search_config
from indexing.build import build_index, chunking_config
from indexing.chunking import Chunker
from indexing.documents import load_corpus
from indexing.embedding import DEFAULT_EXPORT_CACHE, Encoder, open_encoder
from mlsearch.configs import EncoderConfig
from mlsearch.settings import Settings
from search.searcher import Searcher

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p / "shared" for p in ROOT.parents if (p / "shared" / "datasets").is_dir()), ROOT.parent / "shared")
VARIANTS = {
    "torch": ("torch", False), "openvino": ("openvino", False), "openvino-int8": ("openvino", True),
    "onnx": ("onnx", False), "onnx-int8": ("onnx", True),
}


def query_ms(encoder: Encoder, queries: list[str], repeat: int) -> list[float]:
    """Milliseconds of ``encode([query])`` for ``repeat`` queries, after a warm-up."""
    for query in queries[:5]:
        encoder.encode([query])
    timings = []
    for i in range(repeat):
        started = time.perf_counter()
        encoder.encode([queries[i % len(queries)]])
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def throughput(encoder: Encoder, passages: list[str], batch_size: int) -> float:
    """Passages per second of ``encode(passages, batch_size)``."""
    encoder.encode(passages[:batch_size], batch_size=batch_size)
    started = time.perf_counter()
    encoder.encode(passages, batch_size=batch_size)
    return len(passages) / (time.perf_counter() - started)


def ndcg(encoder: Encoder, dataset_name: str, settings: Settings, folder: Path) -> float:
    """Dense nDCG@10 of ``encoder`` on a dataset, over an index it builds itself in ``folder``."""
    dataset = load_dataset(dataset_name, corpus_dir=ROOT / "corpus")
    local = replace(build_config(settings), index_dir=folder / "none")
    prepared = prepare_index(dataset, local, encoder, ["faiss"], cache_dir=folder)
    searcher = Searcher.open(prepared.index_dir, search_config(settings), encoder=encoder)
    result = evaluate(searcher, dataset, methods=["dense"], k=10, id_map=prepared.id_map)
    return float(result.metrics_table()["dense"]["ndcg@10"])


def padding_share(lengths: list[int], order: list[int], batch_size: int) -> float:
    """The share of padding tokens when texts of these token ``lengths`` run in ``order``, ``batch_size`` a batch."""
    padded = sum(
        len(rows) * max(lengths[i] for i in rows)
        for rows in (order[s:s + batch_size] for s in range(0, len(order), batch_size))
    )
    return 1 - sum(lengths) / padded


def measure(
    name: str, args: argparse.Namespace, queries: list[str], passages: list[str], reference: np.ndarray
) -> dict[str, Any]:
    """Every figure of one backend; ``reference`` holds torch's embeddings of ``passages``."""
    backend, int8 = VARIANTS[name]
    config = EncoderConfig(backend=backend, int8=int8, cache_dir=args.cache_dir, threads=args.threads)
    started = time.perf_counter()
    encoder = open_encoder(args.model, config)
    row: dict[str, Any] = {"backend": name, "load_s": round(time.perf_counter() - started, 2)}
    timings = query_ms(encoder, queries, args.repeat)
    row["query_p50_ms"] = round(statistics.median(timings), 2)
    row["query_p95_ms"] = round(float(np.percentile(timings, 95)), 2)
    row["passages_per_s"] = round(throughput(encoder, passages, 32), 1)
    vectors = encoder.encode(passages, batch_size=32)
    cosine = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    row["cosine_mean"], row["cosine_min"] = round(float(cosine.mean()), 5), round(float(cosine.min()), 5)
    with tempfile.TemporaryDirectory(prefix=f"bench-encoders-{name}-") as tmp:
        settings = Settings(model=args.model, index_dir=Path(tmp) / "corpus-index")
        if not args.skip_build:
            started = time.perf_counter()
            build_index(build_config(settings), encoder, corpus_dir=ROOT / "corpus")
            row["build_s"] = round(time.perf_counter() - started, 2)
        for dataset in args.datasets:
            label = Path(dataset).name
            row[f"ndcg@10 {label}"] = round(ndcg(encoder, dataset, settings, Path(tmp) / label), 4)
    print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "backend"), flush=True)
    return row


def report(rows: list[dict[str, Any]], threads: int) -> None:
    """The table, and each goal against torch."""
    keys = [k for k in rows[0] if k != "backend"]
    print()
    print(f"threads per backend: {threads}")
    print(f"{'backend':14} " + " ".join(f"{k:>18}" for k in keys))
    for row in rows:
        print(f"{row['backend']:14} " + " ".join(f"{row.get(k, float('nan')):>18}" for k in keys))
    torch_row = next((r for r in rows if r["backend"] == "torch"), None)
    if torch_row is None:
        return
    print()
    for row in rows:
        if row is torch_row:
            continue
        latency = row["query_p50_ms"] / torch_row["query_p50_ms"]
        speed = row["passages_per_s"] / torch_row["passages_per_s"]
        build = torch_row.get("build_s", float("nan")) / row.get("build_s", float("nan"))
        gaps = [abs(row[k] - torch_row[k]) for k in keys if k.startswith("ndcg")]
        print(f"{row['backend']:14} query p50 {latency:.2f}x torch (goal <= 0.3), throughput {speed:.2f}x "
              f"(goal >= 4), build {build:.2f}x faster, largest nDCG@10 gap {max(gaps, default=0):.4f} "
              f"(goal <= 0.005)")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--backends", default="torch,openvino,openvino-int8,onnx")
    parser.add_argument("--threads", type=int, default=1, help="Threads for every backend.")
    parser.add_argument("--datasets", default=f"builtin,{SHARED / 'datasets' / 'cranfield'}")
    parser.add_argument("--repeat", type=int, default=100, help="Queries timed per backend.")
    parser.add_argument("--passages", type=int, default=256, help="Chunks of corpus/ encoded for throughput.")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_EXPORT_CACHE, help="Export cache.")
    parser.add_argument("--skip-build", action="store_true", help="Leave out the build of corpus/.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    args = parser.parse_args()
    args.datasets = [d for d in args.datasets.split(",") if d == "builtin" or (d and Path(d).exists())]
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown backend(s) {', '.join(unknown)}; valid: {', '.join(VARIANTS)}")

    import torch

    torch.set_num_threads(args.threads)
    settings = Settings(model=args.model)
    first = open_encoder(args.model, EncoderConfig(backend="torch"))  # the reference: torch, whatever the default
    documents = load_corpus(ROOT / "corpus").documents
    chunks = Chunker(first.count_tokens, chunking_config(build_config(settings), first)).chunk_documents(documents)
    passages = [c.embedding_text for c in chunks][: args.passages]
    queries = load_queries(200)
    lengths = [min(c.tokens, first.max_seq_length) for c in chunks]
    by_chars = sorted(range(len(chunks)), key=lambda i: -len(chunks[i].embedding_text))
    by_tokens = sorted(range(len(chunks)), key=lambda i: -lengths[i])
    print(f"padding at batch 32 over the {len(chunks)} chunks of corpus/: "
          f"{padding_share(lengths, by_chars, 32):.1%} sorted by characters, "
          f"{padding_share(lengths, by_tokens, 32):.1%} sorted by tokens", flush=True)
    print(f"{args.model}, {args.threads} thread(s); {len(queries)} queries, {len(passages)} passages "
          f"(mean {statistics.mean(c.tokens for c in chunks[:len(passages)]):.0f} tokens); datasets "
          f"{', '.join(args.datasets)}", flush=True)
    reference = first.encode(passages, batch_size=32)  # torch, for each backend's cosine
    rows = [measure(name, args, queries, passages, reference) for name in names]
    report(rows, args.threads)
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
