"""The model card (``README.md``) and the lineage file (``mlsearch_lineage.json``) of a fine-tuned model.

``mlsearch index build --model PATH`` copies the lineage file into the index manifest (``model.lineage``), so
an index says which data, generator, hyper-parameters and gate produced the model it was built with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune.split import describe_split
from indexing.build import LINEAGE_FILE
from mlsearch.reporting import markdown_table

CARD_FILE = "README.md"
HYPER_LABELS = (
    ("epochs", "epochs"), ("batch_size", "batch size"), ("learning_rate", "learning rate (AdamW, linear decay)"),
    ("warmup_ratio", "warm-up ratio"), ("weight_decay", "weight decay"),
    ("max_seq_length", "max tokens per text while training"), ("seed", "seed"), ("loss", "loss"),
    ("result_similarity", "similarity"), ("result_scale", "scale"), ("batch_sampler", "batch sampler"),
    ("hard_negatives", "hard negatives"), ("device", "device"), ("result_examples", "training examples"),
    ("result_steps", "optimizer steps"), ("result_train_loss", "mean training loss"),
    ("result_seconds", "training time (s)"),
)


def write_lineage(model_dir: Path, lineage: dict[str, Any]) -> Path:
    """Write ``mlsearch_lineage.json`` into the model folder."""
    path = Path(model_dir) / LINEAGE_FILE
    path.write_text(json.dumps(lineage, indent=2, default=str) + "\n")
    return path


def read_lineage(model_dir: Path) -> dict[str, Any] | None:
    """The lineage of a model folder, or None when it has none."""
    path = Path(model_dir) / LINEAGE_FILE
    return dict(json.loads(path.read_text())) if path.is_file() else None


GATE_HEADER = ["gate set", "queries", "nDCG@10 before", "nDCG@10 after", "Δ", "wins / losses / ties",
               "paired t-test p", "Wilcoxon p"]


def gate_rows(gate: dict[str, Any]) -> list[list[str]]:
    """The gate's before/after rows (one per gate set, in :data:`GATE_HEADER`'s order), as text."""
    return [[name, str(s["queries"]), f"{s['before']:.4f}", f"{s['after']:.4f}", f"{s['delta']:+.4f}",
             f"{s['wins']} / {s['losses']} / {s['ties']}", f"{s['t_pvalue']:.4f}", f"{s['wilcoxon_pvalue']:.4f}"]
            for name, s in gate["sets"].items()]


def metrics_table(gate: dict[str, Any]) -> str:
    """The gate's before/after table in Markdown."""
    return markdown_table(GATE_HEADER, gate_rows(gate))


def render_model_card(lineage: dict[str, Any]) -> str:
    """The model card: base model, data, generator, hyper-parameters, metrics and how to use it."""
    base, data, gen, train, gate = (lineage[k] for k in ("base_model", "data", "generator", "training", "gate"))
    status = "promoted" if lineage["promoted"] else "NOT promoted (the current model was kept)"
    hyper = [[label, str(train[key])] for key, label in HYPER_LABELS if key in train]
    split = lineage["split"]
    generator_model = f" (model `{gen['model']}`)" if gen.get("model") else ""
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(gen["generated_by_kind"].items()))
    logged = gen.get("logged_queries") or {}
    logged_line = (f"- Logged queries: {logged.get('file')} ({logged.get('given')} given, {logged.get('labelled')} "
                   "pseudo-labelled where dense and BM25 agree on the top passage)\n" if logged.get("file") else "")
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: {base['name']}
tags: [sentence-transformers, feature-extraction, mlsearch, unsupervised-domain-adaptation]
---

# Fine-tuned {base['name']} for mlsearch

Status: **{status}** by the mlsearch promotion gate on {lineage['created_at']}.

## Base model

- Name: `{base['name']}`
- Weights sha256: `{base['weights_hash']}`
- This model's weights sha256: `{lineage['weights_hash']}`

## Training data

No labelled data: synthetic queries generated from the chunks of the index `{data['index_dir']}`
(version `{data['index_version']}`, corpus `{data['corpus']}`, fingerprint `{data['corpus_fingerprint']}`,
{data['chunks']} chunks).

- Generator: `{gen['name']}`{generator_model}, {gen['queries_per_chunk']} per chunk;
  generated {gen['generated']} ({kinds}), kept {gen['kept']} after filters (removed: {gen['removed']}).
{logged_line}- Split: {describe_split(split)}.

## Hyper-parameters

{markdown_table(["parameter", "value"], hyper)}

## Metrics (promotion gate)

{metrics_table(gate)}

Decision: {"promoted" if gate['promoted'] else "not promoted"}.

{chr(10).join(f"- {reason}" for reason in gate['reasons'])}

## Usage

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("path/to/this/folder")
```

```bash
mlsearch index build --model path/to/this/folder   # records mlsearch_lineage.json in the index manifest
```

The full lineage (hyper-parameters, data, gate, library versions) is in `mlsearch_lineage.json`; the gate's
report with per-query wins and losses is in `report.html`.
"""


def write_model_card(model_dir: Path, lineage: dict[str, Any]) -> Path:
    """Write the model card as the folder's ``README.md`` (replacing the library's generic one)."""
    path = Path(model_dir) / CARD_FILE
    path.write_text(render_model_card(lineage))
    return path
