"""What the labelled-dataset benchmarks share (``bench.fusion``, ``bench.keyword``, ``bench.prf``): their common
arguments, the evaluation index opened as it was built, and each chunk's document label.

An evaluation index (``mlsearch eval`` caches one per dataset) names its documents by file-safe ids; ``ids.json``
beside it maps them back to the dataset's own ids, which the judgements use.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from evaluation.datasets import EvalDataset, load_dataset
from evaluation.indexes import IDS_FILE
from indexing.backends.configs import search_config
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from mlsearch.settings import Settings
from search.searcher import Searcher


def dataset_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the arguments every labelled-dataset benchmark takes: ``--dataset``, ``--index-dir``,
    ``--corpus`` and ``-k`` (the depth documents are scored at)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="builtin")
    parser.add_argument("--index-dir", type=Path, required=True, help="An index of the dataset's corpus.")
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("-k", type=int, default=100)
    return parser


@dataclass
class LabelledIndex:
    """A dataset and the evaluation index of its corpus.

    Attributes:
        data: The dataset (queries and judgements).
        manifest: The index's manifest.
        searcher: A searcher of the index, its model opened as the index was built (backend and int8 flag).
        labels: Each chunk's document, as the judgements name it (position ``i`` is chunk ``i``).
    """

    data: EvalDataset
    manifest: Manifest
    searcher: Searcher
    labels: list[str]


def open_labelled(args: argparse.Namespace) -> LabelledIndex:
    """Open ``args.index_dir`` and load ``args.dataset`` (arguments of :func:`dataset_parser`)."""
    index_dir = Path(args.index_dir)
    manifest = Manifest.load(current_version_dir(index_dir))
    searcher = Searcher.open(index_dir, search_config(Settings(index_dir=index_dir)))
    data = load_dataset(args.dataset, corpus_dir=args.corpus)
    ids_file = index_dir.parent / IDS_FILE
    id_map = json.loads(ids_file.read_text()) if ids_file.is_file() else {}
    labels = [id_map.get(chunk.doc_id, chunk.doc_id) for chunk in searcher.store]
    return LabelledIndex(data, manifest, searcher, labels)
