"""Indexing benchmark: chunks per second of the whole pipeline beside bare ``SentenceTransformer.encode``.

Run: ``.venv/bin/python -m bench.index [--corpus corpus/] [--model all-MiniLM-L6-v2] [--repeat 2]``

Both figures come from one run, on the same chunks and the same loaded model: the pipeline is
``build_index`` from the folder to a published index (load, clean, chunk with the tokenizer, embed, write
FAISS, Annoy, LSI, BM25 and the chunk store, swap), with nothing to reuse; the bare figure is
``model.encode`` on the chunks' embedding texts with the same batch size. Goal: pipeline / bare >= 0.9.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from indexing.backends.configs import build_config
from indexing.build import build_index, chunking_config
from indexing.chunking import Chunker
from indexing.documents import load_corpus
from indexing.embedding import load_encoder
from mlsearch.settings import Settings


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--repeat", type=int, default=2, help="Alternating runs of each; the median is kept.")
    args = parser.parse_args()

    settings = Settings(model=args.model)
    encoder = load_encoder(args.model)
    documents = load_corpus(args.corpus).documents
    chunks = Chunker(encoder.count_tokens, chunking_config(build_config(settings), encoder)).chunk_documents(documents)
    texts = [chunk.embedding_text for chunk in chunks]
    encoder.model.encode(texts[:64], batch_size=settings.batch_size)  # warm up

    bare_times, pipeline_times = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        encoder.model.encode(texts, batch_size=settings.batch_size, show_progress_bar=False)
        bare_times.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            summary = build_index(build_config(settings), encoder, corpus_dir=args.corpus,
                                  index_dir=Path(tmp) / "idx")
            pipeline_times.append(time.perf_counter() - started)
            assert summary.chunks == len(chunks) and summary.reused == 0
            timings = summary.timings

    bare = len(chunks) / statistics.median(bare_times)
    pipeline = len(chunks) / statistics.median(pipeline_times)
    print(f"corpus       {args.corpus} ({len(documents)} documents, {len(chunks)} chunks, "
          f"mean {statistics.mean(c.tokens for c in chunks):.0f} tokens)")
    print(f"model        {encoder.name}, batch {settings.batch_size}")
    print(f"{'':12} {'chunks/s':>10} {'seconds':>9}")
    print(f"{'bare encode':12} {bare:10.1f} {statistics.median(bare_times):9.2f}")
    print(f"{'pipeline':12} {pipeline:10.1f} {statistics.median(pipeline_times):9.2f}")
    print(f"ratio        {pipeline / bare:.3f} (goal >= 0.9: {'met' if pipeline / bare >= 0.9 else 'NOT met'})")
    print("last pipeline phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
